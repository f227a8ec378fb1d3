"""The measured (or simulated) powder pattern as the rest of the code sees it, validated once here."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_POINTS = 50


class PatternError(ValueError):
    """A powder pattern that cannot be used, with the reason in words."""


X_AXIS_UNITS = ("2theta_deg", "2theta_rad", "q_inv_angstrom", "q_inv_nm", "d_angstrom", "d_nm",
                "dstar2_inv_angstrom2", "dstar2_inv_nm2")


def two_theta_from_axis(
    values, unit: str, wavelength_angstrom: float, source: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """``(two_theta_deg, order)`` for a pattern's first column in ``unit`` (one of ``X_AXIS_UNITS``), read at
    ``wavelength_angstrom``; ``order`` sorts the points by rising 2θ (d-spacings fall as 2θ rises).

    Points the wavelength cannot reach (Q > 4π/λ, d < λ/2) are refused with the smallest wavelength that would.
    """
    x = np.asarray(values, dtype=float)
    if unit == "2theta_deg":
        return x, np.arange(len(x))
    if unit == "2theta_rad":
        return np.degrees(x), np.arange(len(x))
    where = f" in {source}" if source else ""
    if unit.startswith("q_"):
        d = 2.0 * np.pi / np.where(x > 0, x, np.nan) * (10.0 if unit == "q_inv_nm" else 1.0)
    elif unit.startswith("dstar2_"):
        d = 1.0 / np.sqrt(np.where(x > 0, x, np.nan)) * (10.0 if unit == "dstar2_inv_nm2" else 1.0)
    elif unit in ("d_angstrom", "d_nm"):
        d = np.where(x > 0, x, np.nan) * (10.0 if unit == "d_nm" else 1.0)
    else:
        raise PatternError(f"unknown x-axis unit {unit!r}{where}; expected one of {', '.join(X_AXIS_UNITS)}")
    if np.isnan(d).any():
        i = int(np.flatnonzero(np.isnan(d))[0])
        raise PatternError(f"the first column{where} ({unit}) must be positive; point {i + 1} is {x[i]:g}")
    ratio = wavelength_angstrom / (2.0 * d)
    if ratio.max() > 1.0:
        raise PatternError(
            f"the pattern{where} reaches d = {d.min():.3f} Å, which {wavelength_angstrom:.4f} Å X-rays cannot (they "
            f"stop at d = {wavelength_angstrom / 2:.3f} Å); give the measurement's wavelength, at most "
            f"{2 * d.min():.3f} Å, with --wavelength or a 'wavelength' header entry"
        )
    two_theta = 2.0 * np.degrees(np.arcsin(ratio))
    order = np.argsort(two_theta, kind="stable")
    return two_theta[order], order


@dataclass(frozen=True)
class PowderPattern:
    """A powder profile: intensity on a strictly increasing 2θ grid, for one wavelength."""

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    wavelength_angstrom: float
    source: str = ""

    @property
    def q_inv_angstrom(self) -> np.ndarray:
        """Scattering vector magnitude Q = 4π sin θ / λ (Å⁻¹)."""
        q = np.radians(self.two_theta_deg)  # then in place: the same arithmetic without four temporaries
        q /= 2.0
        np.sin(q, out=q)
        q *= 4.0 * np.pi
        q /= self.wavelength_angstrom
        return q


def validate_pattern(
    two_theta_deg, intensity, wavelength_angstrom: float, source: str = "", max_points: int | None = None
) -> PowderPattern:
    """Check a pattern and return it as a :class:`PowderPattern`, or raise :class:`PatternError` saying why."""
    where = f" in {source}" if source else ""
    try:
        tt = np.asarray(two_theta_deg, dtype=float).ravel()
        y = np.asarray(intensity, dtype=float).ravel()
    except (TypeError, ValueError):
        raise PatternError(f"2θ and intensity must be numbers{where}") from None
    if tt.size == 0:
        raise PatternError(f"the pattern is empty{where}")
    if tt.size != y.size:
        raise PatternError(f"2θ has {tt.size} values but intensity has {y.size}{where}")
    if tt.size < MIN_POINTS:
        raise PatternError(f"the pattern has only {tt.size} point{'' if tt.size == 1 else 's'}{where}; at least "
                           f"{MIN_POINTS} are needed")
    if max_points is not None and tt.size > max_points:
        raise PatternError(f"the pattern has {tt.size} points{where}; at most {max_points} are accepted")
    bad = ~np.isfinite(tt) | ~np.isfinite(y)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PatternError(f"the pattern contains NaN or infinite values{where} (first at point {i + 1})")
    steps = np.diff(tt)
    if np.any(steps == 0):
        i = int(np.flatnonzero(steps == 0)[0])
        raise PatternError(f"2θ = {tt[i]:g}° appears twice{where}; each 2θ must be unique")
    if np.all(steps < 0):
        # refused, not reversed: a falling first column is as often d-spacings (Å) as a scan run backwards
        raise PatternError(f"the first column falls throughout{where} ({tt[0]:g} to {tt[-1]:g}): if it is 2θ from a "
                           "scan run backwards, reverse the rows; if it holds d-spacings, name it 'd (Å)' in a "
                           "header line above the numbers")
    if np.any(steps < 0):
        i = int(np.flatnonzero(steps < 0)[0])
        raise PatternError(
            f"2θ is not increasing{where}: {tt[i]:g}° is followed by {tt[i + 1]:g}° (sort the pattern by 2θ)"
        )
    if tt[0] < 0:
        raise PatternError(f"2θ starts at {tt[0]:g}°{where}; 2θ must be positive")
    if not math.isfinite(wavelength_angstrom) or wavelength_angstrom <= 0:
        raise PatternError(f"wavelength {wavelength_angstrom} Å is not a positive number")
    if tt[-1] >= 180:
        raise PatternError(
            f"2θ reaches {tt[-1]:g}°{where}, beyond the 180° that diffraction at {wavelength_angstrom:g} Å allows; "
            "is the first column 2θ in degrees?"
        )
    if np.any(y < 0):
        # background-subtracted data may dip slightly below zero; large negative counts mean a wrong column.
        if y.min() < -0.05 * max(y.max(), 0.0) or y.max() <= 0:
            raise PatternError(f"the intensities are negative{where} (minimum {y.min():g}); counts must be >= 0")
        y = np.clip(y, 0.0, None)
    if not np.any(y > 0):
        raise PatternError(f"all intensities are zero{where}; there is no diffraction signal")
    return PowderPattern(tt, y, float(wavelength_angstrom), source)
