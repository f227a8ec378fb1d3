"""Powder X-ray diffraction patterns of crystal structures, at any wavelength.

Method (the same physics as pymatgen's ``XRDCalculator``, which the tests check against)
---------------------------------------------------------------------------------------
1. Reciprocal-lattice points ``h`` with ``|g_h| = 1/d_h <= 2 sin(theta_max)/lambda`` are enumerated on a
   box bounded by ``|h_i| <= g_max |a_i|``.
2. Intensities are equal on a Laue-group orbit: ``|F(h R)| = |F(h)|`` for every rotation ``R`` of the
   crystal's point group and for ``-1`` (Friedel's law, no anomalous dispersion). The rotations come from
   spglib at ``SYMMETRY_SYMPREC``; each orbit is represented by one ``h`` and its size (the multiplicity).
   The structure factor is evaluated only for the representatives. This is where the speed comes from:
   up to 48x fewer structure factors than a per-reflection sum (see ``bench/xrd_simulation.py``).
3. ``F(h) = sum_j occ_j f_j(s) exp(-B_j s^2) exp(2 pi i h . x_j)`` with ``s = 1/(2d)`` and the atomic
   scattering factors ``f(s) = Z - 41.78214 s^2 sum_k a_k exp(-b_k s^2)`` of pymatgen's table
   (``ATOMIC_SCATTERING_PARAMS``); ``B`` is an optional Debye-Waller factor per element (Å^2).
4. ``I = m |F|^2 LP(theta)`` with the Lorentz-polarisation factor ``(1 + cos^2 2theta) / (sin^2 theta cos theta)``
   (unpolarised beam, no monochromator).
5. Reflections closer than ``TWO_THETA_TOL_DEG`` merge into one peak; peaks weaker than
   ``SCALED_INTENSITY_TOL_PERCENT`` of the strongest are dropped; intensities are scaled to 100.

Not modelled: absorption, extinction, anomalous dispersion, monochromator polarisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import spglib
import spglib.error
from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS, WAVELENGTHS
from pymatgen.core import Structure

import tasks.crystallography  # noqa: F401  (sets spglib's error handling)

TWO_THETA_TOL_DEG = 1e-5  # peaks closer than this are one peak (pymatgen's TWO_THETA_TOL)
SCALED_INTENSITY_TOL_PERCENT = 1e-3  # weaker peaks are dropped (pymatgen's SCALED_INTENSITY_TOL)
# Å; must be tight: at 1e-3 spglib accepts the near-symmetry of slightly distorted cells (spglib's own
# distorted/POSCAR-161-1), whose "equivalent" reflections then differ in |F| by a factor of two.
SYMMETRY_SYMPREC = 1e-5
_ANGSTROM_ALIASES = {"CuKalpha": "CuKa", "MoKalpha": "MoKa"}


def resolve_wavelength(wavelength: str | float) -> float:
    """Wavelength in Å from a named anode line (``CuKa``, ``MoKa1``, ``CoKa2``, ``AgKb1`` ...) or a number in Å.

    ``Ka`` is the weighted Kα average (2 Kα1 + Kα2)/3, as in pymatgen's table.
    """
    if isinstance(wavelength, (int, float)) and not isinstance(wavelength, bool):
        value = float(wavelength)
    else:
        text = str(wavelength).strip()
        text = _ANGSTROM_ALIASES.get(text, text)
        try:
            value = float(text)
        except ValueError:
            matches = {k.lower(): k for k in WAVELENGTHS}
            key = matches.get(text.lower())
            if key is None:
                raise ValueError(
                    f"unknown wavelength {wavelength!r}: give a value in Å (e.g. 0.7093) or one of "
                    + ", ".join(sorted(WAVELENGTHS))
                ) from None
            return float(WAVELENGTHS[key])
    if not (0.05 <= value <= 5.0) or not math.isfinite(value):
        raise ValueError(f"wavelength {value} Å is outside 0.05-5 Å; X-ray wavelengths are given in Å")
    return value


@lru_cache(maxsize=None)
def _scattering_coefficients(symbol: str) -> np.ndarray:
    try:
        return np.asarray(ATOMIC_SCATTERING_PARAMS[symbol], dtype=float)
    except KeyError:
        raise ValueError(f"no X-ray scattering factors for element {symbol}; cannot simulate its pattern") from None


@dataclass(frozen=True)
class Reflections:
    """Symmetry-unique reflections of a structure; wavelength-independent.

    Attributes
    ----------
    hkl : (M, 3) int, one representative per Laue-group orbit
    multiplicity : (M,) int, orbit size
    d_angstrom : (M,) interplanar spacing
    f_squared : (M,) |F|^2 (electrons^2) of one member of the orbit
    g_cart : (M, 3) reciprocal vector of the representative in Cartesian 1/Å (for texture models)
    rotations : (K, 3, 3) Laue-group rotations used (acting on h as row vectors)
    """

    hkl: np.ndarray
    multiplicity: np.ndarray
    d_angstrom: np.ndarray
    f_squared: np.ndarray
    g_cart: np.ndarray
    rotations: np.ndarray
    reciprocal_matrix: np.ndarray


@dataclass(frozen=True)
class StickPattern:
    """A powder pattern as merged peaks, sorted by 2θ; ``intensity`` scaled to 100 unless unscaled."""

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    d_angstrom: np.ndarray
    multiplicity: np.ndarray
    hkl: np.ndarray
    wavelength_angstrom: float

    def __len__(self) -> int:
        return len(self.two_theta_deg)


@dataclass(frozen=True)
class _SiteArrays:
    symbols: list[str]  # one entry per (site, species) pair
    occupancies: np.ndarray
    frac_coords: np.ndarray
    spglib_types: np.ndarray  # one per site: majority species and its occupancy


def _site_arrays(structure: Structure) -> _SiteArrays:
    symbols, occupancies, coords, types = [], [], [], []
    for site, xyz in zip(structure, structure.frac_coords):
        species = site.species
        items = list(species.items())
        for sp, occ in items:
            symbols.append(sp.symbol)
            occupancies.append(occ)
            coords.append(xyz)
        major, occ = max(items, key=lambda kv: kv[1])
        types.append(major.Z * 1000 + int(round(1000 * occ)))
    return _SiteArrays(symbols, np.asarray(occupancies, float), np.asarray(coords, float), np.asarray(types))


def laue_rotations(structure: Structure, symprec: float = SYMMETRY_SYMPREC, _sites: _SiteArrays | None = None):
    """Rotations of the crystal's Laue group acting on Miller indices (row vectors), unique, with -1 included.

    Sites with different majority species or occupancy are kept apart, so partial occupancies lower the
    symmetry rather than fake it.
    """
    sites = _sites or _site_arrays(structure)
    cell = (np.asarray(structure.lattice.matrix), np.asarray(structure.frac_coords), sites.spglib_types)
    try:
        symmetry = spglib.get_symmetry(cell, symprec=symprec)
    except spglib.error.SpglibError:
        symmetry = None  # no symmetry found: identity and Friedel pairs only, still exact
    rotations = np.eye(3, dtype=np.int64)[None] if symmetry is None else np.asarray(symmetry["rotations"])
    rotations = np.concatenate([rotations, -rotations])
    return np.unique(rotations.reshape(len(rotations), 9), axis=0).reshape(-1, 3, 3)


def _hkl_in_sphere(reciprocal: np.ndarray, real: np.ndarray, g_max: float) -> tuple[np.ndarray, np.ndarray]:
    limits = np.floor(g_max * np.linalg.norm(real, axis=1)).astype(int)
    axes = [np.arange(-n, n + 1) for n in limits]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    g = np.linalg.norm(hkl @ reciprocal, axis=1)
    keep = (g <= g_max) & (g > 0)
    return hkl[keep], g[keep]


def _orbit_representatives(hkl: np.ndarray, rotations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ``h`` per orbit of ``hkl`` under ``rotations`` and the orbit sizes.

    An image ``h R`` is encoded as the integer ``(h R) . w`` with ``w = (B^2, B, 1)``, so all images of all
    reflections come from one matrix product ``hkl @ (R w)``; the orbit's key is the largest image code.
    """
    span = int(np.abs(hkl).max()) + 1 if len(hkl) else 1
    base = 2 * span + 1
    weights = np.array([base * base, base, 1], dtype=float)
    codes = hkl.astype(float) @ (rotations.astype(float) @ weights).T  # N x K, exact integers in float64
    canonical = codes.max(axis=1).round().astype(np.int64)
    unique_keys, counts = np.unique(canonical, return_counts=True)
    shifted = unique_keys + span * (base * base + base + 1)
    rep = np.stack([shifted // (base * base), (shifted // base) % base, shifted % base], axis=1) - span
    return rep.astype(np.int64), counts.astype(np.int64)


def compute_reflections(
    structure: Structure,
    d_min_angstrom: float,
    debye_waller_b: dict[str, float] | None = None,
    symprec: float = SYMMETRY_SYMPREC,
) -> Reflections:
    """All reflections with ``d >= d_min_angstrom``, reduced to Laue-group orbits, with |F|^2."""
    if len(structure) == 0:
        raise ValueError("the structure has no atoms")
    real = np.asarray(structure.lattice.matrix)
    reciprocal = np.asarray(structure.lattice.reciprocal_lattice_crystallographic.matrix)
    hkl_all, _ = _hkl_in_sphere(reciprocal, real, 1.0 / d_min_angstrom)
    sites = _site_arrays(structure)
    rotations = laue_rotations(structure, symprec, sites)
    hkl, multiplicity = _orbit_representatives(hkl_all, rotations) if len(hkl_all) else (hkl_all, hkl_all[:, 0])
    g_cart = hkl @ reciprocal
    g = np.linalg.norm(g_cart, axis=1)
    s2 = (g / 2.0) ** 2

    elements = sorted(set(sites.symbols))
    column = {el: i for i, el in enumerate(elements)}
    form = np.empty((len(g), len(elements)))
    b_factors = debye_waller_b or {}
    for el in elements:
        coeff = _scattering_coefficients(el)
        f = _atomic_number(el) - 41.78214 * s2 * np.sum(coeff[:, 0] * np.exp(-coeff[:, 1] * s2[:, None]), axis=1)
        if b_factors.get(el):
            f = f * np.exp(-b_factors[el] * s2)
        form[:, column[el]] = f
    weights = form[:, [column[s] for s in sites.symbols]] * sites.occupancies[None, :]
    phase = 2.0 * np.pi * (hkl @ sites.frac_coords.T)
    f_re = np.einsum("mn,mn->m", weights, np.cos(phase))
    f_im = np.einsum("mn,mn->m", weights, np.sin(phase))
    return Reflections(
        hkl=hkl, multiplicity=multiplicity, d_angstrom=1.0 / g, f_squared=f_re**2 + f_im**2,
        g_cart=g_cart, rotations=rotations, reciprocal_matrix=reciprocal,
    )


@lru_cache(maxsize=None)
def _atomic_number(symbol: str) -> int:
    from pymatgen.core import Element

    return Element(symbol).Z


def lorentz_polarization(theta_rad: np.ndarray) -> np.ndarray:
    """(1 + cos^2 2θ) / (sin^2 θ cos θ): unpolarised beam, no monochromator."""
    return (1 + np.cos(2 * theta_rad) ** 2) / (np.sin(theta_rad) ** 2 * np.cos(theta_rad))


def two_theta_deg_from_d(d_angstrom: np.ndarray, wavelength_angstrom: float) -> np.ndarray:
    """Bragg's law; NaN where the reflection is beyond the limiting sphere (λ/2d > 1)."""
    ratio = wavelength_angstrom / (2.0 * np.asarray(d_angstrom, dtype=float))
    with np.errstate(invalid="ignore"):
        return np.degrees(2.0 * np.arcsin(np.where(ratio <= 1.0, ratio, np.nan)))


def merge_peaks(
    two_theta_deg: np.ndarray, intensity: np.ndarray, d_angstrom: np.ndarray, multiplicity: np.ndarray,
    hkl: np.ndarray, wavelength_angstrom: float, scaled: bool = True,
) -> StickPattern:
    """Merge reflections within ``TWO_THETA_TOL_DEG``, drop negligible peaks, optionally scale to 100."""
    order = np.argsort(two_theta_deg, kind="stable")
    tt, inten, d, mult, hkl = two_theta_deg[order], intensity[order], d_angstrom[order], multiplicity[order], hkl[order]
    if len(tt) == 0:
        empty = np.zeros(0)
        return StickPattern(empty, empty, empty, empty.astype(int), np.zeros((0, 3), int), wavelength_angstrom)
    starts = np.concatenate([[True], np.diff(tt) >= TWO_THETA_TOL_DEG])
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    merged_i = np.bincount(group, weights=inten)
    merged_m = np.bincount(group, weights=mult).astype(np.int64)
    # the label of a merged peak is its strongest family
    strongest = first.copy()
    best = np.full(len(first), -np.inf)
    np.maximum.at(best, group, inten)
    is_best = inten >= best[group]
    strongest[group[is_best][::-1]] = np.flatnonzero(is_best)[::-1]
    keep = merged_i / merged_i.max() * 100.0 > SCALED_INTENSITY_TOL_PERCENT
    merged_i = merged_i[keep]
    if scaled and len(merged_i):
        merged_i = merged_i / merged_i.max() * 100.0
    return StickPattern(
        two_theta_deg=tt[first][keep], intensity=merged_i, d_angstrom=d[first][keep],
        multiplicity=merged_m[keep], hkl=hkl[strongest][keep], wavelength_angstrom=wavelength_angstrom,
    )


class PowderXRDSimulator:
    """Stick patterns of structures for one instrument setting.

    Parameters
    ----------
    wavelength : named line (``CuKa``, ``MoKa1``, ...) or value in Å
    two_theta_range_deg : (min, max) in degrees, default (0, 90) as pymatgen
    debye_waller_b : optional isotropic B factor per element symbol, Å^2
    """

    def __init__(
        self,
        wavelength: str | float = "CuKa",
        two_theta_range_deg: tuple[float, float] = (0.0, 90.0),
        debye_waller_b: dict[str, float] | None = None,
        symprec: float = SYMMETRY_SYMPREC,
    ) -> None:
        self.wavelength = wavelength
        self.two_theta_range_deg = two_theta_range_deg
        self.debye_waller_b = debye_waller_b
        self.symprec = symprec

    @property
    def wavelength_angstrom(self) -> float:
        return resolve_wavelength(self.wavelength)

    def d_min_angstrom(self) -> float:
        lo, hi = self.two_theta_range_deg
        if not 0 <= lo < hi <= 180:
            raise ValueError(f"2θ range must satisfy 0 <= min < max <= 180 degrees, got {self.two_theta_range_deg}")
        return self.wavelength_angstrom / (2.0 * math.sin(math.radians(hi / 2.0)))

    def reflections(self, structure: Structure) -> Reflections:
        return compute_reflections(structure, self.d_min_angstrom(), self.debye_waller_b, self.symprec)

    def pattern_from_reflections(self, refl: Reflections, scaled: bool = True) -> StickPattern:
        lam = self.wavelength_angstrom
        tt = two_theta_deg_from_d(refl.d_angstrom, lam)
        lo, hi = self.two_theta_range_deg
        ok = np.isfinite(tt) & (tt >= lo) & (tt <= hi)
        intensity = refl.multiplicity[ok] * refl.f_squared[ok] * lorentz_polarization(np.radians(tt[ok] / 2.0))
        return merge_peaks(tt[ok], intensity, refl.d_angstrom[ok], refl.multiplicity[ok], refl.hkl[ok], lam, scaled)

    def get_pattern(self, structure: Structure, scaled: bool = True) -> StickPattern:
        """The stick pattern of ``structure`` (intensities scaled so the strongest peak is 100)."""
        return self.pattern_from_reflections(self.reflections(structure), scaled)
