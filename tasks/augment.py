"""Measured-like powder profiles from simulated reflections: seeded, reproducible instrument and sample effects.

Each effect follows the standard powder-diffraction model (Pecharsky & Zavalij, *Fundamentals of Powder
Diffraction*, 2nd ed., ch. 8):

- peak width: Caglioti ``H^2 = U tan^2 θ + V tan θ + W`` (deg^2) plus Scherrer size broadening
  ``H = K λ / (L cos θ)`` (K = 0.9); pseudo-Voigt shape with Lorentzian fraction ``eta``;
- Kα2 doublet: a second copy at the Kα2 wavelength with half the intensity;
- zero shift ``Δ2θ = z`` and sample displacement ``Δ2θ = -2 s cos θ / R`` (radians; goniometer radius R);
- lattice strain: an isotropic scale of all d-spacings (error of the lattice parameters);
- preferred orientation: March-Dollase ``W(α) = (r^2 cos^2 α + sin^2 α / r)^(-3/2)`` averaged over the members
  of each reflection's orbit, α the angle between g and the texture axis;
- thermal damping ``exp(-B s^2)`` with an overall B;
- background: Chebyshev polynomial plus an amorphous hump (broad Gaussian);
- impurity peaks: a few weak extra sticks at random positions;
- counting statistics: Poisson noise at a random peak count, plus Gaussian read-out noise;
- the 2θ window and step of a real scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.signal import fftconvolve

from tasks.patterns import PowderPattern
from tasks.xrd import Reflections, lorentz_polarization, resolve_wavelength, two_theta_deg_from_d

GONIOMETER_RADIUS_MM = 240.0
SCHERRER_K = 0.9
KALPHA2_RATIO = 0.5


@dataclass(frozen=True)
class AugmentationRanges:
    """Ranges the random instrument/sample parameters are drawn from (uniform unless stated)."""

    anodes: tuple[str, ...] = ("Cu", "Cu", "Cu", "Co", "Mo", "Fe", "Cr")
    kalpha2_probability: float = 0.6
    caglioti_u: tuple[float, float] = (0.0, 0.05)
    caglioti_v: tuple[float, float] = (-0.02, 0.0)
    caglioti_w: tuple[float, float] = (0.001, 0.02)
    crystallite_size_nm: tuple[float, float] = (15.0, 200.0)
    eta: tuple[float, float] = (0.1, 0.9)
    zero_shift_deg: tuple[float, float] = (-0.08, 0.08)
    displacement_mm: tuple[float, float] = (-0.1, 0.1)
    strain: tuple[float, float] = (-0.01, 0.01)
    march_dollase_r: tuple[float, float] = (0.7, 1.3)
    texture_probability: float = 0.5
    b_overall: tuple[float, float] = (0.0, 1.5)
    background_fraction: tuple[float, float] = (0.0, 0.15)
    hump_fraction: tuple[float, float] = (0.0, 0.1)
    impurity_peaks: tuple[int, int] = (0, 3)
    impurity_max_fraction: float = 0.05
    peak_counts: tuple[float, float] = (300.0, 30000.0)  # log-uniform
    readout_noise_fraction: tuple[float, float] = (0.0, 0.01)
    two_theta_min_deg: tuple[float, float] = (5.0, 15.0)
    two_theta_max_deg: tuple[float, float] = (60.0, 90.0)
    step_deg: tuple[float, float] = (0.01, 0.04)


@dataclass(frozen=True)
class InstrumentSample:
    """One draw of every augmentation parameter (all physical units in the names)."""

    wavelength_angstrom: float
    kalpha2_angstrom: float | None
    caglioti_uvw_deg2: tuple[float, float, float]
    crystallite_size_nm: float
    eta: float
    zero_shift_deg: float
    displacement_mm: float
    strain: float
    texture_axis: np.ndarray | None
    march_dollase_r: float
    b_overall_angstrom2: float
    background_fraction: float
    background_coefficients: np.ndarray
    hump_fraction: float
    hump_center_deg: float
    hump_fwhm_deg: float
    impurity_positions_deg: np.ndarray
    impurity_fractions: np.ndarray
    peak_counts: float
    readout_noise_fraction: float
    two_theta_range_deg: tuple[float, float]
    step_deg: float


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


@dataclass
class MeasuredLikeAugmenter:
    """Turns :class:`~tasks.xrd.Reflections` into measured-like profiles; identical seeds give identical output."""

    ranges: AugmentationRanges = field(default_factory=AugmentationRanges)

    def sample(self, rng: np.random.Generator, wavelength: str | float | None = None) -> InstrumentSample:
        r = self.ranges
        if wavelength is None:
            anode = r.anodes[int(rng.integers(len(r.anodes)))]
            lam1 = resolve_wavelength(f"{anode}Ka1")
            lam2 = resolve_wavelength(f"{anode}Ka2") if rng.random() < r.kalpha2_probability else None
            if lam2 is None:
                lam1 = resolve_wavelength(f"{anode}Ka")
        else:
            lam1, lam2 = resolve_wavelength(wavelength), None
        hi_limit = min(r.two_theta_max_deg[1], 2 * np.degrees(np.arcsin(min(1.0, lam1 / (2 * 0.9)))))
        tt_max = float(rng.uniform(min(r.two_theta_max_deg[0], hi_limit - 10), hi_limit))
        tt_min = _u(rng, r.two_theta_min_deg)
        n_imp = int(rng.integers(r.impurity_peaks[0], r.impurity_peaks[1] + 1))
        return InstrumentSample(
            wavelength_angstrom=lam1,
            kalpha2_angstrom=lam2,
            caglioti_uvw_deg2=(_u(rng, r.caglioti_u), _u(rng, r.caglioti_v), _u(rng, r.caglioti_w)),
            crystallite_size_nm=float(np.exp(rng.uniform(*np.log(r.crystallite_size_nm)))),
            eta=_u(rng, r.eta),
            zero_shift_deg=_u(rng, r.zero_shift_deg),
            displacement_mm=_u(rng, r.displacement_mm),
            strain=_u(rng, r.strain),
            texture_axis=rng.normal(size=3) if rng.random() < r.texture_probability else None,
            march_dollase_r=_u(rng, r.march_dollase_r),
            b_overall_angstrom2=_u(rng, r.b_overall),
            background_fraction=_u(rng, r.background_fraction),
            background_coefficients=rng.normal(size=4) * np.array([1.0, 0.5, 0.25, 0.1]),
            hump_fraction=_u(rng, r.hump_fraction),
            hump_center_deg=float(rng.uniform(15, 35)),
            hump_fwhm_deg=float(rng.uniform(5, 15)),
            impurity_positions_deg=rng.uniform(tt_min, tt_max, size=n_imp),
            impurity_fractions=rng.uniform(0.005, r.impurity_max_fraction, size=n_imp),
            peak_counts=float(np.exp(rng.uniform(*np.log(r.peak_counts)))),
            readout_noise_fraction=_u(rng, r.readout_noise_fraction),
            two_theta_range_deg=(tt_min, tt_max),
            step_deg=_u(rng, r.step_deg),
        )

    def render(self, refl: Reflections, sample: InstrumentSample, rng: np.random.Generator) -> PowderPattern:
        """A noisy profile of ``refl`` under ``sample``; ``rng`` drives only the counting noise."""
        lo, hi = sample.two_theta_range_deg
        grid = np.arange(lo, hi, sample.step_deg)
        d = refl.d_angstrom * (1.0 + sample.strain)
        s2 = 1.0 / (4.0 * d**2)
        base = refl.multiplicity * refl.f_squared * np.exp(-sample.b_overall_angstrom2 * s2)
        if sample.texture_axis is not None:
            base = base * march_dollase(refl, sample.texture_axis, sample.march_dollase_r)
        profile = np.zeros_like(grid)
        lines = [(sample.wavelength_angstrom, 1.0)]
        if sample.kalpha2_angstrom is not None:
            lines.append((sample.kalpha2_angstrom, KALPHA2_RATIO))
        for lam, weight in lines:
            tt = two_theta_deg_from_d(d, lam)
            ok = np.isfinite(tt) & (tt < 179.0)
            theta = np.radians(tt[ok] / 2.0)
            intensity = weight * base[ok] * lorentz_polarization(theta)
            position = tt[ok] + sample.zero_shift_deg + np.degrees(
                -2.0 * sample.displacement_mm * np.cos(theta) / GONIOMETER_RADIUS_MM)
            profile += pseudo_voigt_sum(grid, position, intensity, self._fwhm_deg(theta, lam, sample), sample.eta)
        if profile.max() <= 0:
            profile[:] = 0.0
        else:
            profile /= profile.max()
        if len(sample.impurity_positions_deg):
            imp_fwhm = np.full(len(sample.impurity_positions_deg), 0.1)
            profile += pseudo_voigt_sum(grid, sample.impurity_positions_deg, sample.impurity_fractions, imp_fwhm, 0.5)
        x = (grid - grid[0]) / max(grid[-1] - grid[0], 1e-9) * 2.0 - 1.0
        background = np.polynomial.chebyshev.chebval(x, sample.background_coefficients)
        background = sample.background_fraction * (background - background.min()) / max(np.ptp(background), 1e-9)
        hump_sigma = sample.hump_fwhm_deg / 2.3548
        hump = sample.hump_fraction * np.exp(-0.5 * ((grid - sample.hump_center_deg) / hump_sigma) ** 2)
        expected = (profile + background + hump + 0.01) * sample.peak_counts
        counts = rng.poisson(expected).astype(float)
        counts += rng.normal(0.0, sample.readout_noise_fraction * sample.peak_counts, size=counts.shape)
        return PowderPattern(grid, np.clip(counts, 0.0, None), sample.wavelength_angstrom, "augmented")

    @staticmethod
    def _fwhm_deg(theta_rad: np.ndarray, lam: float, sample: InstrumentSample) -> np.ndarray:
        u, v, w = sample.caglioti_uvw_deg2
        tan = np.tan(theta_rad)
        instrumental = np.sqrt(np.clip(u * tan**2 + v * tan + w, 1e-6, None))
        size = np.degrees(SCHERRER_K * lam / (sample.crystallite_size_nm * 10.0 * np.cos(theta_rad)))
        return np.sqrt(instrumental**2 + size**2)


def march_dollase(refl: Reflections, axis_cart: np.ndarray, r: float) -> np.ndarray:
    """Orbit-averaged March-Dollase factor of each reflection for texture axis ``axis_cart`` (Cartesian)."""
    axis = np.asarray(axis_cart, dtype=float)
    axis = axis / np.linalg.norm(axis)
    images = np.einsum("mi,kij->mkj", refl.hkl.astype(float), refl.rotations.astype(float)) @ refl.reciprocal_matrix
    cos = np.abs(images @ axis) / np.linalg.norm(images, axis=2)
    cos2 = np.clip(cos**2, 0.0, 1.0)
    w = (r * r * cos2 + (1.0 - cos2) / r) ** -1.5
    return w.mean(axis=1)


def pseudo_voigt_kernel(offsets_deg: np.ndarray, fwhm_deg: float, eta: float) -> np.ndarray:
    """Area-normalised pseudo-Voigt (1/deg) at ``offsets_deg`` from the peak centre."""
    hw = fwhm_deg / 2.0
    gauss = np.sqrt(np.log(2) / np.pi) / hw * np.exp(-np.log(2) * (offsets_deg / hw) ** 2)
    lorentz = 1.0 / (np.pi * hw * (1.0 + (offsets_deg / hw) ** 2))
    return eta * lorentz + (1.0 - eta) * gauss


#: peaks whose widths differ by less than this factor share one convolution kernel
WIDTH_CLASS_RATIO = 1.03
KERNEL_HALF_WIDTH_FWHM = 15.0


def pseudo_voigt_sum(
    grid_deg: np.ndarray, center_deg: np.ndarray, area: np.ndarray, fwhm_deg: np.ndarray, eta: float
) -> np.ndarray:
    """Sum of area-normalised pseudo-Voigt peaks on a uniform grid ``grid_deg``.

    Peaks are binned onto the grid (split linearly between the two nearest points, which keeps each
    centroid exact) and convolved with one kernel per width class (widths within ``WIDTH_CLASS_RATIO``):
    O(N log N) instead of O(peaks x window), which matters for broad peaks on fine grids. Widths grow with
    2θ, so a class covers a stretch of the pattern: each is convolved over its own stretch only (plus the
    kernel's reach), 2x faster per measured-like MP pattern than convolving every class over the whole grid,
    with the same sums (to 1e-13).
    """
    n = len(grid_deg)
    out = np.zeros(n)
    if len(center_deg) == 0 or n < 2:
        return out
    step = (grid_deg[-1] - grid_deg[0]) / (n - 1)
    margin = KERNEL_HALF_WIDTH_FWHM * np.asarray(fwhm_deg)
    inside = (center_deg > grid_deg[0] - margin) & (center_deg < grid_deg[-1] + margin)
    center, amp, fwhm = center_deg[inside], np.asarray(area, float)[inside], np.asarray(fwhm_deg, float)[inside]
    if len(center) == 0:
        return out
    classes = np.floor(np.log(fwhm) / np.log(WIDTH_CLASS_RATIO)).astype(int)
    position = (center - grid_deg[0]) / step  # fractional grid index
    lower = np.floor(position).astype(int)
    frac = position - lower
    for cls in np.unique(classes):
        sel = classes == cls
        first, last = lower[sel].min(), lower[sel].max() + 1
        width = float(np.exp((cls + 0.5) * np.log(WIDTH_CLASS_RATIO)))
        half = int(np.ceil(KERNEL_HALF_WIDTH_FWHM * width / step))
        start, stop = first - half, last + half + 1  # the grid indices this class reaches
        if stop <= 0 or start >= n:
            continue
        sticks = np.bincount(lower[sel] - first, weights=(amp * (1 - frac))[sel], minlength=last - first + 1)
        sticks += np.bincount(lower[sel] - first + 1, weights=(amp * frac)[sel], minlength=last - first + 1)
        kernel = pseudo_voigt_kernel(np.arange(-half, half + 1) * step, width, eta)
        reached = fftconvolve(sticks, kernel)  # element m falls on grid index start + m
        lo, hi = max(start, 0), min(stop, n)
        out[lo:hi] += reached[lo - start:hi - start]
    return np.clip(out, 0.0, None)
