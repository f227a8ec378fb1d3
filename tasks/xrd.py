"""Powder X-ray diffraction patterns of crystal structures, at any wavelength.

Method (the same physics as pymatgen's ``XRDCalculator``, which the tests check against)
---------------------------------------------------------------------------------------
1. Reciprocal-lattice points ``h`` with ``|g_h| = 1/d_h <= 2 sin(theta_max)/lambda`` are enumerated on a
   box bounded by ``|h_i| <= g_max |a_i|``, one of each Friedel pair (``|F(h)| = |F(-h)|``, no anomalous
   dispersion), so each listed reflection has multiplicity 2.
2. No symmetry search: reflections equivalent by symmetry fall on the same 2θ and are summed when peaks merge
   (as in pymatgen). The speed comes from the structure-factor sum instead: ``exp(2 pi i h . x)`` factorises
   per axis, so the sum over atoms is one complex matrix product on the whole index box
   (``_geometric_structure_factors``, 11x faster than cos/sin of the phase matrix in ``bench/xrd_simulation.py``).
   An earlier version reduced reflections to Laue-group orbits found by spglib; the search alone (about 5 ms
   per Materials Project cell) cost more than this whole simulation does now.
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
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS, WAVELENGTHS
from pymatgen.core import Structure


TWO_THETA_TOL_DEG = 1e-5  # peaks closer than this are one peak (pymatgen's TWO_THETA_TOL)
SCALED_INTENSITY_TOL_PERCENT = 1e-3  # weaker peaks are dropped (pymatgen's SCALED_INTENSITY_TOL)
_ANGSTROM_ALIASES = {"CuKalpha": "CuKa", "MoKalpha": "MoKa"}
HC_KEV_ANGSTROM = 12.398419843320026  # h c in keV Å (CODATA 2018): λ[Å] = 12.3984 / E[keV]
_ENERGY = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(keV|eV)", re.IGNORECASE)


def resolve_wavelength(wavelength: str | float) -> float:
    """Wavelength in Å from a named anode line (``CuKa``, ``MoKa1``, ``CoKa2``, ``AgKb1`` ...), a number in Å, or
    a photon energy as synchrotron users give it (``30keV``, ``17.48 keV``, ``8048 eV``: λ = hc/E).

    ``Ka`` is the weighted Kα average (2 Kα1 + Kα2)/3, as in pymatgen's table.
    """
    energy = None
    if isinstance(wavelength, (int, float)) and not isinstance(wavelength, bool):
        value = float(wavelength)
    else:
        text = str(wavelength).strip()
        text = _ANGSTROM_ALIASES.get(text, text)
        energy = _ENERGY.fullmatch(text)
        if energy:
            kev = float(energy.group(1)) / (1000.0 if energy.group(2).lower() == "ev" else 1.0)
            if not kev > 0:
                raise ValueError(f"photon energy {text!r} must be positive")
            value = HC_KEV_ANGSTROM / kev
        else:
            try:
                value = float(text)
            except ValueError:
                value = None
        if value is None:
            matches = {k.lower(): k for k in WAVELENGTHS}
            key = matches.get(text.lower())
            if key is None:
                raise ValueError(
                    f"unknown wavelength {wavelength!r}: give a value in Å (e.g. 0.7093), a photon energy (e.g. "
                    "30keV) or one of "
                    + ", ".join(sorted(WAVELENGTHS))
                ) from None
            return float(WAVELENGTHS[key])
    if not (0.05 <= value <= 5.0) or not math.isfinite(value):
        if energy:
            raise ValueError(f"photon energy {text!r} gives {value:.4g} Å, outside 0.05-5 Å (2.48-248 keV)")
        raise ValueError(f"wavelength {value} Å is outside 0.05-5 Å; X-ray wavelengths are given in Å")
    return value


@lru_cache(maxsize=4096)
def _scattering_table(elements: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atomic numbers ``Z (E,)`` and the coefficients ``a, b (E, 4)`` of pymatgen's scattering-factor table."""
    missing = [el for el in elements if el not in ATOMIC_SCATTERING_PARAMS]
    if missing:
        raise ValueError(f"no X-ray scattering factors for element {missing[0]}; cannot simulate its pattern")
    coeff = np.asarray([ATOMIC_SCATTERING_PARAMS[el] for el in elements], dtype=float)  # (E, 4, 2)
    z = np.asarray([_atomic_number(el) for el in elements], dtype=float)
    return z, coeff[:, :, 0], coeff[:, :, 1]


def _form_factors(elements: tuple[str, ...], s2: np.ndarray) -> np.ndarray:
    """``f_e(s) = Z_e - 41.78214 s^2 sum_k a_ek exp(-b_ek s^2)`` for every ``s^2`` (N,) and element: (N, E)."""
    z, a, b = _scattering_table(elements)
    return z[None, :] - 41.78214 * s2[:, None] * np.einsum("ek,nek->ne", a, np.exp(-b[None, :, :] * s2[:, None, None]))


@dataclass(frozen=True)
class Reflections:
    """Reflections of a structure, one of each Friedel pair; wavelength-independent.

    Attributes
    ----------
    hkl : (M, 3) int, one of each pair ``{h, -h}``
    multiplicity : (M,) int, 2 (the pair); symmetry-equivalent reflections are separate rows with equal |F|^2
    d_angstrom : (M,) interplanar spacing
    f_squared : (M,) |F|^2 (electrons^2)
    g_cart : (M, 3) reciprocal vector in Cartesian 1/Å (for texture models)
    rotations : (2, 3, 3) the identity and -1: the images of each row that ``multiplicity`` counts
    reciprocal_matrix : (3, 3) reciprocal basis (rows, 1/Å, no 2π)
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


def _site_arrays(structure: Structure) -> _SiteArrays:
    symbols, occupancies, coords = [], [], []
    for site, xyz in zip(structure, structure.frac_coords):
        for sp, occ in site.species.items():
            symbols.append(sp.symbol)
            occupancies.append(occ)
            coords.append(xyz)
    return _SiteArrays(symbols, np.asarray(occupancies, float), np.asarray(coords, float))


FRIEDEL_ROTATIONS = np.stack([np.eye(3, dtype=np.int64), -np.eye(3, dtype=np.int64)])


def _friedel_half_box(reciprocal: np.ndarray, real: np.ndarray, g_max: float) -> tuple[np.ndarray, np.ndarray]:
    """One of each Friedel pair ``{h, -h}`` with ``0 < |g_h| <= g_max``, and the box limits ``(H, K, L)``.

    The half is ``l > 0``, or ``l = 0, k > 0``, or ``l = k = 0, h > 0``. ``|g|^2`` is the metric's quadratic
    form evaluated by broadcasting over the three axes of the box (no (N, 3) temporaries).
    """
    h_max, k_max, l_max = (int(n) for n in np.floor(g_max * np.linalg.norm(real, axis=1)))
    metric = reciprocal @ reciprocal.T
    h = np.arange(-h_max, h_max + 1, dtype=float)[:, None, None]
    k = np.arange(-k_max, k_max + 1, dtype=float)[None, :, None]
    l = np.arange(0, l_max + 1, dtype=float)[None, None, :]
    g2 = (metric[0, 0] * h * h + metric[1, 1] * k * k + metric[2, 2] * l * l
          + 2.0 * (metric[0, 1] * h * k + metric[0, 2] * h * l + metric[1, 2] * k * l))
    inside = g2 <= g_max * g_max
    inside[:, : k_max + 1, 0] = False  # l = 0 needs k > 0, or k = 0 and h > 0
    inside[h_max + 1 :, k_max, 0] = g2[h_max + 1 :, k_max, 0] <= g_max * g_max
    ih, ik, il = np.nonzero(inside)
    hkl = np.stack([ih - h_max, ik - k_max, il], axis=1)
    return hkl, np.array([h_max, k_max, l_max])


def _geometric_structure_factors(
    hkl: np.ndarray, limits: np.ndarray, frac_coords: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``S[m, e] = sum_j weights[j, e] exp(2 pi i h_m . x_j)`` for every reflection ``m`` and column ``e``.

    ``exp(2 pi i (h x + k y + l z))`` factorises per axis, so the sum over atoms is a complex matrix product of
    an (h, k) table with an l table, done by BLAS on the whole index box, then read at ``hkl``. Measured
    against ``cos``/``sin`` of the full phase matrix on the same reflections: 11x faster (bench/xrd_simulation.py).
    """
    h_max, k_max, l_max = (int(n) for n in limits)
    n_h, n_k, n_l = 2 * h_max + 1, 2 * k_max + 1, l_max + 1
    index = np.concatenate([np.arange(-h_max, h_max + 1), np.arange(-k_max, k_max + 1), np.arange(0, n_l)])
    axis = np.repeat([0, 1, 2], [n_h, n_k, n_l])
    table = np.exp(2j * np.pi * (index[:, None] * frac_coords.T[axis]))  # one exp call: small arrays
    tx, ty, tz = table[:n_h], table[n_h:n_h + n_k], table[n_h + n_k:]
    txy = (tx[:, None, :] * ty[None, :, :]).reshape(n_h * n_k, -1)
    tz_weighted = (tz[None, :, :] * weights.T[:, None, :]).reshape(-1, len(frac_coords))  # (element, l) x atom
    grid = txy @ tz_weighted.T  # (h, k) x (element, l), summed over atoms
    row = (hkl[:, 0] + h_max) * n_k + (hkl[:, 1] + k_max)
    column = np.arange(weights.shape[1])[None, :] * n_l + hkl[:, 2:3]
    return grid[row[:, None], column]


def compute_reflections(
    structure: Structure,
    d_min_angstrom: float,
    debye_waller_b: dict[str, float] | None = None,
) -> Reflections:
    """All reflections with ``d >= d_min_angstrom``, one of each Friedel pair (multiplicity 2), with |F|^2.

    No symmetry search: equivalent reflections land on the same 2θ and are summed when peaks are merged,
    which is exact for any cell, distorted or not, and cheaper than spglib's search on all but huge cells.
    """
    if len(structure) == 0:
        raise ValueError("the structure has no atoms")
    real = np.asarray(structure.lattice.matrix)
    reciprocal = np.asarray(structure.lattice.reciprocal_lattice_crystallographic.matrix)
    hkl, limits = _friedel_half_box(reciprocal, real, 1.0 / d_min_angstrom)
    sites = _site_arrays(structure)
    g_cart = hkl @ reciprocal
    g = np.linalg.norm(g_cart, axis=1)
    s2 = (g / 2.0) ** 2

    elements = tuple(sorted(set(sites.symbols)))
    column = {el: i for i, el in enumerate(elements)}
    occupancy = np.zeros((len(sites.symbols), len(elements)))
    occupancy[np.arange(len(sites.symbols)), [column[s] for s in sites.symbols]] = sites.occupancies
    form = _form_factors(elements, s2)
    if debye_waller_b:
        form *= np.exp(-np.outer(s2, [debye_waller_b.get(el, 0.0) for el in elements]))
    structure_factor = np.einsum(
        "me,me->m", form, _geometric_structure_factors(hkl, limits, sites.frac_coords, occupancy)
    )
    return Reflections(
        hkl=hkl, multiplicity=np.full(len(hkl), 2, dtype=np.int64), d_angstrom=1.0 / g,
        f_squared=structure_factor.real**2 + structure_factor.imag**2,
        g_cart=g_cart, rotations=FRIEDEL_ROTATIONS, reciprocal_matrix=reciprocal,
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
    # the label of a merged peak is its strongest reflection
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
    ) -> None:
        self.wavelength = wavelength
        self.two_theta_range_deg = two_theta_range_deg
        self.debye_waller_b = debye_waller_b

    @property
    def wavelength_angstrom(self) -> float:
        return resolve_wavelength(self.wavelength)

    def d_min_angstrom(self) -> float:
        lo, hi = self.two_theta_range_deg
        if not 0 <= lo < hi <= 180:
            raise ValueError(f"2θ range must satisfy 0 <= min < max <= 180 degrees, got {self.two_theta_range_deg}")
        return self.wavelength_angstrom / (2.0 * math.sin(math.radians(hi / 2.0)))

    def reflections(self, structure: Structure) -> Reflections:
        return compute_reflections(structure, self.d_min_angstrom(), self.debye_waller_b)

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
