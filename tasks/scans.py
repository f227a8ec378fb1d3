"""What instrument files share: the wavelength of a Kα doublet, joining a measurement's 2θ ranges into one
pattern, header numbers, and XML tag names without their namespace.

Used by the vendor readers (``tasks.xrdml``, ``tasks.rigaku``, ``tasks.bruker``); knows no one file format.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tasks.patterns import PatternError

DEFAULT_KALPHA2_RATIO = 0.5  # I(Kα2)/I(Kα1) where a file records both lines but not their ratio


def local_name(tag: str) -> str:
    """An XML tag without its ``{namespace}``: vendors change the namespace with each schema version."""
    return tag.rsplit("}", 1)[-1]


def header_number(header: dict[str, str], key: str) -> float | None:
    """A finite number from a file header's ``key``, or None where it is missing or not a number."""
    try:
        number = float(header.get(key, ""))
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def kalpha_wavelength_angstrom(
    alpha1: float | None, alpha2: float | None = None, ratio: float | None = None
) -> float | None:
    """The wavelength a pattern measured with this tube line is read at, in Å (None where Kα1 is not recorded).

    With both Kα lines, their intensity-weighted mean ``(λ1 + r λ2) / (1 + r)``, as ``CuKa`` is (r = 0.5); with
    Kα1 alone (a monochromated beam, or Kα2 recorded equal to Kα1 or with ratio 0), Kα1.
    """
    if alpha1 is None or not alpha1 > 0:
        return None
    r = DEFAULT_KALPHA2_RATIO if ratio is None else ratio
    if alpha2 is None or not alpha2 > 0 or abs(alpha2 - alpha1) < 1e-6 or not r > 0:
        return float(alpha1)
    return float((alpha1 + r * alpha2) / (1.0 + r))


@dataclass(frozen=True)
class ScanRange:
    """One 2θ range of a measurement: its points and how its intensities compare with other ranges'.

    ``rate_scale`` turns the intensities into counts per second (1 where they already are, 1/time per step for
    counts); ``None`` where the file does not say, in which case ranges join only if ``settings`` (step, speed,
    unit: whatever the format records) are the same for each.
    """

    two_theta_deg: np.ndarray
    intensity: np.ndarray
    rate_scale: float | None = None
    settings: tuple = ()


def join_scan_ranges(
    ranges: list[ScanRange], source: str, other_axes: list[str] = (), axis_word: str = "scan axis", hint: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """One pattern from a measurement's 2θ ranges: a single range as it is, several side by side.

    Where there is none, the error names the axis the file's scans moved instead (``other_axes``, called
    ``axis_word`` in the format), or adds ``hint`` on what the format's data should look like.

    Ranges that overlap are refused, not averaged: in the files that have them they are a pole figure or texture
    measurement (one range per tilt) or repeated scans, and neither is one powder pattern. Ranges in counts whose
    counting times differ are put on one scale (counts per second) where the file records the time, and refused
    where it does not.
    """
    if not ranges:
        if other_axes:
            raise PatternError(f"{source} holds no 2θ scan: its {axis_word} is {other_axes[0]!r} (a rocking curve, "
                               "a phi, texture or position scan is not a powder pattern)")
        raise PatternError(f"{source} holds no 2θ scan with intensities{hint}")
    if len(ranges) == 1:
        return ranges[0].two_theta_deg, ranges[0].intensity
    ordered = sorted(ranges, key=lambda r: float(np.min(r.two_theta_deg)))
    spans = [(float(np.min(r.two_theta_deg)), float(np.max(r.two_theta_deg))) for r in ordered]
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start <= end:
            listed = ", ".join(f"{a:g}-{b:g}°" for a, b in spans[:6]) + (" ..." if len(spans) > 6 else "")
            raise PatternError(
                f"{source} holds {len(ranges)} scans over overlapping 2θ ranges ({listed}): a pole figure, a "
                "texture measurement or repeated scans, not one powder pattern; export the scan to predict from "
                "as a two-column .xy file"
            )
    if all(r.rate_scale is not None for r in ordered):
        intensity = [r.intensity * r.rate_scale for r in ordered]
    elif len({r.settings for r in ordered}) == 1:
        intensity = [r.intensity for r in ordered]
    else:
        raise PatternError(
            f"{source} holds {len(ranges)} 2θ ranges measured with different settings and no counting time to "
            "put them on one scale; export them as one two-column .xy file in counts per second"
        )
    return np.concatenate([r.two_theta_deg for r in ordered]), np.concatenate(intensity)
