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

Structure types (``GeneratorConfig.prototype_fraction``): a share of the crystals is not placed at random but
built from a known structure type of the AFLOW prototype library (Mehl et al. 2017; the 288 types pymatgen ships),
because random placements in real Wyckoff occupations still do not arrange atoms the way real materials do (a
classifier separates their patterns from MP's; BENCHMARKS.md). Each such crystal gets new elements (MP frequencies,
in the type's electronegativity order), is perturbed in its free
coordinates, lowered with ``subgroup_probability`` to a random maximal subgroup (PyXtal's ``subgroup_once``, the
way tilted perovskites and ordered rock salts derive from their aristotypes), strained within its crystal system
and scaled so that its closest contact is 0.75-1.0 of the sum of the atomic radii; spglib labels it. Models
trained on such crystals also search them by structure type (``tasks.pipeline.SYNTHETIC_TYPES_MODEL_OPTIONS``):
with half the crystals from structure types, SG top-1 on held-out MP patterns rises from 0.19 to 0.25
(``bench/synthetic_sources.py``). Off by default (``spacegroup train --structure-types``): the search halves the
batch throughput, and rhombohedral types outvote the one diamond type on silicon's pattern (BENCHMARKS.md notes).

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
from pymatgen.core import Element, Lattice, Structure

from tasks.symmetry import SymmetryError, symmetry_labels

log = logging.getLogger(__name__)

MIN_DISTANCE_FRACTION = 0.6
DENSITY_RANGE_G_CM3 = (0.8, 23.0)
SAMPLING_MODES = ("wyckoff-rows", "label-matched")
SUBGROUP_DISPLACEMENT_ANGSTROM = (0.02, 0.15)  # PyXtal's eps: split orbits move by up to half of it (Å)
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
    sampling: str = "wyckoff-rows"  # or "label-matched" (random placements only): see the module docstring
    prototype_fraction: float = 0.0  # share of crystals built from known structure types (see the module docstring)
    subgroup_probability: float = 0.5  # of those, the share lowered to a random maximal subgroup first

    def __post_init__(self):
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLING_MODES)}, not {self.sampling!r}")
        for name in ("prototype_fraction", "subgroup_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie between 0 and 1, not {getattr(self, name)!r}")

    @property
    def tag(self) -> str:
        """Every setting that decides which crystals a seed gives, for naming cached feature sets (the structure-type
        settings only when structure types are used, so earlier names stay valid)."""
        unused = () if self.prototype_fraction > 0 else ("prototype_fraction", "subgroup_probability")
        return "-".join(f"{f.name}{getattr(self, f.name):g}" if isinstance(getattr(self, f.name), float)
                        else f"{f.name}{getattr(self, f.name)}" for f in fields(self) if f.name not in unused)


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
    return _closest_contact(structure) >= MIN_DISTANCE_FRACTION


def _closest_contact(structure: Structure) -> float:
    """The shortest interatomic distance as a fraction of its pair's summed atomic radii (inf for one atom)."""
    if len(structure) < 2:
        return float("inf")
    dist = structure.distance_matrix
    radii = np.array([_atomic_radius_angstrom(site.specie.symbol) for site in structure])
    np.fill_diagonal(dist, np.inf)
    return float((dist / (radii[:, None] + radii[None, :])).min())


def _labels_if_plausible(structure: Structure):
    """spglib's labels of a plausible crystal; ``None`` for an implausible one or one spglib cannot label."""
    if not _plausible(structure):
        return None
    try:
        return symmetry_labels(structure)
    except SymmetryError:
        return None


def generate_one(index: int, seed: int, config: GeneratorConfig = GeneratorConfig()) -> SyntheticCrystal | None:
    """Crystal number ``index`` of the run seeded ``seed``; ``None`` when every try was rejected."""
    from pyxtal import pyxtal
    from pyxtal.symmetry import Group

    rng = np.random.default_rng([seed, index])
    # drawn only when asked for, so that runs without structure types keep the random stream (and the shipped model)
    if config.prototype_fraction > 0 and rng.random() < config.prototype_fraction:
        return _from_structure_type(rng, seed, index, config)
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
        labels = _labels_if_plausible(structure)
        if labels is None or (config.sampling == "label-matched" and labels.space_group_number != spg):
            continue
        return SyntheticCrystal(structure, spg, labels.space_group_number, labels.crystal_system,
                                labels.extinction_group, (seed, index))
    return None


@lru_cache(maxsize=1)
def structure_types() -> tuple:
    """The AFLOW prototype library's structure types (288, as pymatgen ships them) as PyXtal crystals.

    M. J. Mehl et al., Comput. Mater. Sci. 136, S1 (2017): the library's part 1, read from
    ``pymatgen.analysis.prototypes``. Returned as (PyXtal crystal, AFLOW label) pairs; copy before changing one.
    """
    from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY
    from pyxtal import pyxtal

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in AFLOW_PROTOTYPE_LIBRARY:
            crystal = pyxtal()
            try:
                crystal.from_seed(entry["snl"].structure, tol=0.01)
            except Exception:  # a type PyXtal cannot read in its standard setting is simply not offered
                continue
            out.append((crystal, entry["tags"].get("aflow", "")))
    return tuple(out)


def _from_structure_type(rng: np.random.Generator, seed: int, index: int,
                         config: GeneratorConfig) -> SyntheticCrystal | None:
    """A crystal of a known structure type: new elements on its sites, its cell and free coordinates perturbed.

    With ``config.subgroup_probability`` the type is first lowered to a random maximal subgroup (PyXtal's
    ``subgroup_once``: translationengleiche or klassengleiche, at most a doubled cell), the way many real structures
    are distortions of an aristotype (tilted perovskites, ordered rock salts). New elements come from
    :func:`_substitutes`, and the cell is scaled so that the closest contact is 0.75-1.0 of the sum of the atomic
    radii. The label is what spglib finds.
    """
    import copy

    types = [t for t in structure_types() if config.min_atoms <= sum(t[0].numIons) <= config.max_atoms]
    # PyXtal's site perturbation draws from numpy's global generator: seed it per crystal, then restore it
    state = np.random.get_state()
    np.random.seed(int(rng.integers(2**31)))
    try:
        for _ in range(config.max_tries):
            crystal = copy.deepcopy(types[int(rng.integers(len(types)))][0])
            crystal.random_state = np.random.default_rng(int(rng.integers(2**31)))
            requested = crystal.group.number
            try:
                with warnings.catch_warnings(), _time_limit(4 * config.pyxtal_timeout_s):
                    warnings.simplefilter("ignore")
                    # coordinates first: the subgroup's own coordinates differ between calls in the last bit,
                    # which a perturbation after it can turn into a different crystal
                    crystal.apply_perturbation(d_lat=0.0, d_coor=float(rng.uniform(0.0, 0.1)))
                    if rng.random() < config.subgroup_probability:
                        # PyXtal's own cell mutation here draws from an unseeded generator: the cell is strained below
                        crystal = crystal.subgroup_once(eps=float(rng.uniform(*SUBGROUP_DISPLACEMENT_ANGSTROM)),
                                                        mut_lat=False,
                                                        group_type="t" if rng.random() < 0.7 else "k", max_cell=2)
                        if crystal is None:
                            continue
                        requested = crystal.group.number
                    structure = _rounded(_strained(crystal.to_pymatgen(), crystal.lattice.ltype, rng,
                                                   float(rng.uniform(0.0, 0.1))))
            except Exception:  # PyXtal signals impossible subgroups and placements with several exception types
                continue
            if len(structure) > 2 * config.max_atoms:
                continue
            structure.replace_species(_substitutes(sorted({sp.symbol for sp in structure.species}), rng))
            if len(structure) > 1:
                contact = _closest_contact(structure)
                structure.scale_lattice(structure.volume * (float(rng.uniform(0.75, 1.0)) / contact) ** 3)
            labels = _labels_if_plausible(structure)
            if labels is None:
                continue
            return SyntheticCrystal(structure, requested, labels.space_group_number, labels.crystal_system,
                                    labels.extinction_group, (seed, index))
    finally:
        np.random.set_state(state)
    return None


def _substitutes(old: list[str], rng: np.random.Generator) -> dict[str, str]:
    """New, distinct elements for a structure type's elements ``old``: drawn by MP frequency and put on the type's
    sites in its electronegativity order.

    Drawing each near the element it replaces on Pettifor's scale instead (weights ``exp(-|Δ Mendeleev| / 10)``)
    was measured no better (BENCHMARKS.md, synthetic_sources notes).
    """
    symbols, element_p, chi = _elements()
    new = sorted((str(e) for e in rng.choice(symbols, size=len(old), replace=False, p=element_p)),
                 key=lambda e: -chi[e])
    return dict(zip(sorted(old, key=lambda e: -chi.get(e, 1.5)), new))


def _strained(structure: Structure, lattice_type: str, rng: np.random.Generator, degree: float) -> Structure:
    """The crystal in a cell whose free parameters (those ``lattice_type`` leaves free, in PyXtal's standard
    setting) are each scaled by a random factor within ``1 ± degree / 2``; fractional coordinates kept."""
    a, b, c, alpha, beta, gamma = structure.lattice.parameters
    f = 1.0 + degree * (rng.random(6) - 0.5)
    if lattice_type == "cubic":
        a = b = c = a * f[0]
    elif lattice_type in ("tetragonal", "hexagonal", "trigonal"):
        a = b = a * f[0]
        c *= f[2]
    else:
        a, b, c = a * f[0], b * f[1], c * f[2]
        if lattice_type == "monoclinic":
            # the unique axis's angle is the one off 90 degrees (beta when the cell happens to be rectangular)
            if abs(alpha - 90) > 1e-6:
                alpha *= f[3]
            elif abs(gamma - 90) > 1e-6:
                gamma *= f[5]
            else:
                beta *= f[4]
        elif lattice_type == "triclinic":
            alpha, beta, gamma = alpha * f[3], beta * f[4], gamma * f[5]
    return Structure(Lattice.from_parameters(a, b, c, alpha, beta, gamma), structure.species, structure.frac_coords)


def _rounded(structure: Structure, decimals: int = 6) -> Structure:
    """The same crystal with its cell (Å) and fractional coordinates rounded, so that repeated builds compare equal."""
    return Structure(np.round(structure.lattice.matrix, decimals), structure.species,
                     np.round(structure.frac_coords, decimals) % 1.0)


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
