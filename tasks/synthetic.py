"""Synthetic crystals from real Wyckoff statistics, built with PyXtal and labelled by spglib.

Sampling
--------
1. A (space group, Wyckoff-occupation) row of PyXtal's ``spg_num_wps_mp.csv`` (counts of each occupation
   pattern among Materials Project structures) is drawn with probability ``(1 - flatten) * count share +
   flatten * uniform-over-space-groups share``; ``flatten`` > 0 gives rare groups more examples.
2. The number of species (1-5, at most the number of orbits) follows MP's mix of unary..quinary compounds;
   elements are drawn by ``ELEMENT_FREQUENCY`` (materials containing each element in 36,737 MP entries,
   the CGCNN set, rounded to tens); the most electronegative element takes the most populous orbits.
3. PyXtal places the atoms (``from_random`` with the chosen Wyckoff letters); the crystal is relabelled with
   spglib at symprec 0.1 Å: **the label is what spglib finds**, not what was asked for.
4. Rejected: failed builds, atoms closer than ``MIN_DISTANCE_FRACTION`` x the sum of covalent radii,
   densities outside ``DENSITY_RANGE_G_CM3``, duplicates (same reduced formula, space group and
   volume per atom to 1 %).

Sampling ``"label-matched"`` (``GeneratorConfig.sampling``) draws the space group first, from the table's
own space-group shares over all cell sizes, then an occupation row of that group within the cell-size limits,
and keeps a crystal only when spglib finds the group asked for (otherwise it tries again, up to
``max_tries``). The labels then come close to real materials' space-group mix. Drawing rows from the whole table
(``"wyckoff-rows"``) does not: the cell-size cap removes most large low-symmetry cells, and a failed placement
is replaced by a draw from any group, so easy high-symmetry groups win (labels of 20,000 such patterns: 2.8 %
triclinic and 8.3 % monoclinic against 8.6 % and 22.4 % in the Materials Project; cubic 28 % against 18 %;
label-matched, 300 crystals: 6.3 %, 28.7 %, 16 %). Measured on real MP patterns (BENCHMARKS.md notes,
2026-11-30), a model trained on label-matched crystals is no better than one trained on the default sampling,
with 4,000 or 8,000 crystals, so the default stays ``"wyckoff-rows"`` (it also keeps the shipped model
reproducible).

Every crystal ``i`` of a run is drawn from its own generator seeded by ``(seed, i)``, so the output is the
same for any number of worker processes.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd
from pymatgen.core import Element, Structure

from tasks.symmetry import SymmetryError, symmetry_labels

log = logging.getLogger(__name__)

MIN_DISTANCE_FRACTION = 0.6
DENSITY_RANGE_G_CM3 = (0.8, 23.0)
SAMPLING_MODES = ("wyckoff-rows", "label-matched")
SPECIES_COUNT_WEIGHTS = {1: 0.03, 2: 0.22, 3: 0.45, 4: 0.23, 5: 0.07}

ELEMENT_FREQUENCY: dict[str, int] = {
    "O": 16990, "Li": 5260, "P": 4220, "S": 3070, "F": 3040, "H": 2750, "Si": 2710, "Na": 2540, "Cu": 2490,
    "K": 2180, "Ba": 2110, "N": 2040, "B": 1980, "Fe": 1910, "Al": 1860, "Mn": 1830, "Ti": 1750, "Cl": 1720,
    "Sn": 1630, "Sb": 1630, "C": 1600, "Se": 1560, "Ge": 1560, "Ca": 1540, "Ni": 1540, "Sr": 1490, "Co": 1400,
    "Mg": 1350, "V": 1340, "Bi": 1310, "Te": 1300, "La": 1290, "Zn": 1290, "Rb": 1280, "As": 1220, "In": 1210,
    "Nb": 1180, "Ga": 1120, "Ag": 1100, "Y": 1030, "Cr": 1010, "Cs": 980, "I": 940, "Pd": 920, "Zr": 910,
    "Tl": 890, "Pb": 870, "Nd": 850, "Cd": 830, "Br": 800, "Au": 790, "Rh": 780, "Sm": 780, "Ta": 730,
    "Pr": 730, "Pt": 720, "Ru": 700, "Ce": 690, "Sc": 680, "Hg": 670, "Ho": 660, "Dy": 650, "Er": 640,
    "U": 630, "Ir": 590, "Hf": 570, "Yb": 560, "Tb": 560, "Mo": 510, "Tm": 500, "Lu": 470, "W": 450,
    "Re": 410, "Be": 390, "Th": 340, "Os": 310, "Gd": 310, "Eu": 260,
}


@dataclass(frozen=True)
class SyntheticCrystal:
    """One generated crystal with the space group asked for and the labels spglib gives it."""

    structure: Structure
    requested_space_group: int
    space_group_number: int
    crystal_system: str
    extinction_group: int
    seed: tuple[int, int]


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate: cell size limits, how to sample space groups and how strongly to flatten their mix."""

    max_atoms: int = 32  # atoms in the conventional cell (61 % of the table's counts; 64 would take 87 %)
    min_atoms: int = 1
    flatten: float = 0.3
    max_tries: int = 20
    pyxtal_max_count: int = 3  # PyXtal's own placement attempts per draw (its default 10 mostly burns time)
    pyxtal_timeout_s: float = 0.5  # CPU s; median placement takes 0.03 s, the rare 2-7 s ones are abandoned
    sampling: str = "wyckoff-rows"  # or "label-matched": see the module docstring

    def __post_init__(self):
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, not {self.sampling!r}")

    @property
    def tag(self) -> str:
        """Every setting (all of them decide which crystals a seed gives), for naming cached feature sets."""
        return "-".join(f"{f.name}{getattr(self, f.name):g}" if isinstance(getattr(self, f.name), float)
                        else f"{f.name}{getattr(self, f.name)}" for f in fields(self))


@lru_cache(maxsize=1)
def wyckoff_statistics() -> pd.DataFrame:
    """PyXtal's table of Wyckoff-occupation counts in the Materials Project (columns spg, n_atoms, wps, count)."""
    with resources.files("pyxtal").joinpath("database/spg_num_wps_mp.csv").open() as fh:
        return pd.read_csv(fh)


@lru_cache(maxsize=8)
def _row_probabilities(config: GeneratorConfig) -> tuple[pd.DataFrame, np.ndarray]:
    table = wyckoff_statistics()
    table = table[(table.n_atoms <= config.max_atoms) & (table.n_atoms >= config.min_atoms)].reset_index(drop=True)
    share = table["count"].to_numpy(float)
    share /= share.sum()
    per_group = table.groupby("spg")["count"].transform("sum").to_numpy(float)
    uniform = table["count"].to_numpy(float) / per_group / table.spg.nunique()
    return table, (1 - config.flatten) * share + config.flatten * uniform


@lru_cache(maxsize=8)
def _group_probabilities(config: GeneratorConfig) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[pd.DataFrame, np.ndarray]]]:
    """Space groups with their target shares, and each group's occupation rows within the size limits.

    The shares are counted over all cell sizes: the size cap limits how a group is built, not how often.
    """
    table = wyckoff_statistics()
    totals = table.groupby("spg")["count"].sum()
    sized = table[(table.n_atoms <= config.max_atoms) & (table.n_atoms >= config.min_atoms)]
    rows = {}
    for spg, part in sized.groupby("spg"):
        weights = part["count"].to_numpy(float)
        rows[int(spg)] = (part.reset_index(drop=True), weights / weights.sum())
    groups = np.array(sorted(rows))
    share = totals.loc[groups].to_numpy(float)
    share /= share.sum()
    return groups, (1 - config.flatten) * share + config.flatten / len(groups), rows


@lru_cache(maxsize=1)
def _elements() -> tuple[list[str], np.ndarray, dict[str, float]]:
    symbols = list(ELEMENT_FREQUENCY)
    weights = np.array([ELEMENT_FREQUENCY[s] for s in symbols], float)
    chi = {s: (Element(s).X if Element(s).X == Element(s).X else 1.5) for s in symbols}
    return symbols, weights / weights.sum(), chi


@lru_cache(maxsize=None)
def _atomic_radius_angstrom(symbol: str) -> float:
    """Calculated atomic radius, else the empirical one (pymatgen lacks calculated radii for f-elements)."""
    element = Element(symbol)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(element.atomic_radius_calculated or element.atomic_radius or 1.0)


def _plausible(structure: Structure) -> bool:
    density = float(structure.density)
    if not DENSITY_RANGE_G_CM3[0] <= density <= DENSITY_RANGE_G_CM3[1]:
        return False
    if len(structure) < 2:
        return True
    dist = structure.distance_matrix
    radii = np.array([_atomic_radius_angstrom(site.specie.symbol) for site in structure])
    limit = MIN_DISTANCE_FRACTION * (radii[:, None] + radii[None, :])
    np.fill_diagonal(dist, np.inf)
    return bool(np.all(dist >= limit))


def generate_one(index: int, seed: int, config: GeneratorConfig = GeneratorConfig()) -> SyntheticCrystal | None:
    """Crystal number ``index`` of the run seeded ``seed``; ``None`` when every try was rejected."""
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    rng = np.random.default_rng([seed, index])
    if config.sampling == "label-matched":
        groups, group_p, rows_by_group = _group_probabilities(config)
        table, probs = rows_by_group[int(groups[rng.choice(len(groups), p=group_p)])]
    else:
        table, probs = _row_probabilities(config)
    symbols, element_p, chi = _elements()
    for _ in range(config.max_tries):
        row = table.iloc[int(rng.choice(len(table), p=probs))]
        spg = int(row.spg)
        group = Group(spg)
        orbit_indices = [int(x) for x in str(row.wps).split("-")]
        orbits = [group.Wyckoff_positions[i] for i in orbit_indices]
        n_orbits = len(orbits)
        ks = [k for k in SPECIES_COUNT_WEIGHTS if k <= n_orbits]
        kp = np.array([SPECIES_COUNT_WEIGHTS[k] for k in ks])
        n_species = int(rng.choice(ks, p=kp / kp.sum()))
        elements = [str(e) for e in rng.choice(symbols, size=n_species, replace=False, p=element_p)]
        # every species gets at least one orbit; the rest are spread at random
        assignment = list(rng.permutation(np.concatenate([np.arange(n_species),
                                                          rng.integers(0, n_species, n_orbits - n_species)])))
        per_species: dict[int, list] = {k: [] for k in range(n_species)}
        for orbit, k in zip(orbits, assignment):
            per_species[int(k)].append(orbit)
        # most electronegative element on the most populous set of orbits (anions outnumber cations)
        by_population = sorted(per_species, key=lambda k: -sum(o.multiplicity for o in per_species[k]))
        by_chi = sorted(elements, key=lambda el: -chi[el])
        species = [by_chi[by_population.index(k)] for k in range(n_species)]
        num_ions = [sum(o.multiplicity for o in per_species[k]) for k in range(n_species)]
        sites = [[o.get_label() for o in per_species[k]] for k in range(n_species)]
        crystal = pyxtal()
        try:
            with warnings.catch_warnings(), _time_limit(config.pyxtal_timeout_s):
                warnings.simplefilter("ignore")
                crystal.from_random(3, spg, species, num_ions, sites=sites, max_count=config.pyxtal_max_count,
                                    random_state=int(rng.integers(2**31)))
            if not crystal.valid:
                continue
            structure = crystal.to_pymatgen()
        except Exception:  # PyXtal signals impossible placements with several exception types
            continue
        if not _plausible(structure):
            continue
        try:
            labels = symmetry_labels(structure)
        except SymmetryError:
            continue
        if config.sampling == "label-matched" and labels.space_group_number != spg:
            continue
        return SyntheticCrystal(structure, spg, labels.space_group_number, labels.crystal_system,
                                labels.extinction_group, (seed, index))
    return None


class _PlacementTimeout(Exception):
    pass


@contextmanager
def _time_limit(seconds: float):
    """Abandon a PyXtal placement after ``seconds`` of this process's CPU time (SIGPROF; a no-op outside the main
    thread or on Windows).

    CPU time, not wall-clock time: on a busy machine a placement waits for a core without spending its own time,
    and a wall-clock limit then abandoned placements an idle machine completes, so a seed's crystals depended on
    the load (a serial and a parallel run of one seed differed beside other jobs). The same 60 crystals of a seed
    come out either way on an idle machine.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable or seconds <= 0:
        yield
        return

    def _raise(signum, frame):
        raise _PlacementTimeout()

    previous = signal.signal(signal.SIGPROF, _raise)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def dedup_key(crystal: SyntheticCrystal) -> tuple:
    s = crystal.structure
    return (s.composition.reduced_formula, crystal.space_group_number, round(np.log(s.volume / len(s)) / 0.01))


def _generate_chunk(args: tuple[range, int, GeneratorConfig]) -> list[SyntheticCrystal]:
    indices, seed, config = args
    return [c for c in (generate_one(i, seed, config) for i in indices) if c is not None]


def generate_crystals(
    n: int, seed: int = 0, config: GeneratorConfig = GeneratorConfig(), n_jobs: int = 0, chunk_size: int = 50
) -> Iterator[SyntheticCrystal]:
    """Yield up to ``n`` distinct synthetic crystals (fewer only if duplicates/rejections exhaust the draws).

    ``n_jobs`` worker processes (0 = all cores, 1 = in this process); results come in index order.
    """
    seen: set = set()
    produced = 0
    next_index = 0
    workers = os.cpu_count() or 1 if n_jobs == 0 else n_jobs
    attempts_left = 3 * n + 100
    while produced < n and attempts_left > 0:
        want = min(max(n - produced, 1) + 8, attempts_left)
        chunks = [range(s, min(s + chunk_size, next_index + want)) for s in range(next_index, next_index + want, chunk_size)]
        next_index += want
        attempts_left -= want
        if workers > 1 and len(chunks) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                results = pool.map(_generate_chunk, [(c, seed, config) for c in chunks])
                batches = list(results)
        else:
            batches = [_generate_chunk((c, seed, config)) for c in chunks]
        for batch in batches:
            for crystal in batch:
                key = dedup_key(crystal)
                if key in seen:
                    continue
                seen.add(key)
                produced += 1
                yield crystal
                if produced >= n:
                    return
