"""Excluded 2θ regions: the peaks of a known second phase (a film's substrate, the sample holder, a known
impurity) taken out of a pattern before it is read.

A thin film on FTO glass shows cassiterite's lines beside the film's; a sample on a silicon holder, silicon's.
The model sees one phase per pattern, and strong foreign lines pull its answer to whatever explains them
(``bench/excluded_regions.py`` measures how far, on MP patterns with a substrate's lines added). Indexing and
Rietveld programs let the user exclude such regions; so does this: inside each region the intensity is replaced by
the straight line between the intensities just outside it, so the peaks there vanish, the background stays
continuous and the 2θ grid is unchanged (peak finding and the features need no other change).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from tasks.patterns import PatternError, PowderPattern

MAX_REGIONS = 50
_REGION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*[-:]\s*([0-9]*\.?[0-9]+)\s*$")


def parse_regions(text: str) -> list[tuple[float, float]]:
    """``"26.3-26.9, 37.6-38.2"`` (degrees 2θ; ``:`` may stand for ``-``) -> ``[(26.3, 26.9), (37.6, 38.2)]``."""
    regions = []
    for part in (p for p in text.split(",") if p.strip()):
        match = _REGION.match(part)
        if match is None:
            raise PatternError(f"excluded region {part.strip()!r} is not of the form START-END in degrees 2θ, "
                               "such as 26.3-26.9")
        regions.append((float(match.group(1)), float(match.group(2))))
    return validate_regions(regions)


def validate_regions(regions: Iterable) -> list[tuple[float, float]]:
    """Regions as ``(start, end)`` pairs of degrees 2θ with start < end, or a ``PatternError`` saying what is wrong."""
    out = []
    for region in regions:
        if (isinstance(region, (str, bytes)) or not isinstance(region, Sequence) or len(region) != 2
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in region)):
            raise PatternError(f"an excluded region must be two numbers [start, end] in degrees 2θ, not {region!r}")
        start, end = float(region[0]), float(region[1])
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end > 180:
            raise PatternError(f"excluded region {start:g}-{end:g}° lies outside 0-180° 2θ")
        if start >= end:
            raise PatternError(f"excluded region {start:g}-{end:g}°: its start must be below its end")
        out.append((start, end))
    if len(out) > MAX_REGIONS:
        raise PatternError(f"{len(out)} excluded regions given; at most {MAX_REGIONS} are accepted")
    return out


def exclude_regions(pattern: PowderPattern, regions: Sequence[tuple[float, float]]) -> PowderPattern:
    """``pattern`` with each region (degrees 2θ, ends included) bridged by a straight line between the intensities
    of the nearest points outside it; a region at an end of the scan takes the intensity of its one neighbour.
    Regions that miss the scan change nothing; regions that leave fewer than half its points are refused.

    A region should reach the foot of its line: a bridge between two tails is a flat bump, which the peak finder
    can read as a line. Widening each region down the tails to the nearest minima of the smoothed profile was
    tried and not kept: it helped where the foreign lines were as strong as the sample's and cost as much where they
    were a quarter as strong, by hiding more of the sample's own lines (``bench/excluded_regions.py``)."""
    if not regions:
        return pattern
    tt = pattern.two_theta_deg
    excluded = np.zeros(len(tt), dtype=bool)
    for start, end in validate_regions(regions):
        excluded |= (tt >= start) & (tt <= end)
    if not excluded.any():
        return pattern
    kept = ~excluded
    if kept.sum() < len(tt) / 2:
        raise PatternError(f"the excluded regions cover {excluded.sum()} of the pattern's {len(tt)} points"
                           f"{' in ' + pattern.source if pattern.source else ''}; at most half may be excluded")
    # np.interp bridges each run of excluded points linearly and holds the end values beyond the kept points
    intensity = pattern.intensity.copy()
    intensity[excluded] = np.interp(tt[excluded], tt[kept], pattern.intensity[kept])
    return PowderPattern(tt, intensity, pattern.wavelength_angstrom, pattern.source)
