"""Excluded 2θ regions: the peaks of a known second phase (a film's substrate, the sample holder, a known
impurity) taken out of a pattern before it is read.

A thin film on FTO glass shows cassiterite's lines beside the film's; a sample on a silicon holder, silicon's.
The model sees one phase per pattern, and strong foreign lines pull its answer to whatever explains them
(``bench/excluded_regions.py`` measures how far, on MP patterns with a substrate's lines added). Indexing and
Rietveld programs let the user exclude such regions; so does this: inside each region the intensity is replaced by
the straight line between the intensities just outside it, so the peaks there vanish, the background stays
continuous and the 2θ grid is unchanged (peak finding and the features need no other change).

A user who knows the substrate but not where its lines fall at their wavelength names it (``SUBSTRATES``): its
lines are computed at the pattern's wavelength, and the pattern's peaks that lie on one of them are excluded, so only
the lines the pattern shows are taken out (a line a quarter as strong as the sample's costs little and is best left:
``bench/excluded_regions.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from tasks.patterns import PatternError, PowderPattern

MAX_REGIONS = 50
SUBSTRATE_LINE_MIN_INTENSITY = 0.05  # of the substrate's strongest line
SUBSTRATE_SCALE_RANGE = 0.01  # relative d: a doped film's cell (FTO's d are 0.4-0.7 % longer than SnO2's)
SUBSTRATE_MATCH_DEG = 0.15  # a peak within this of a line (once the scale is fitted) is the substrate's
SUBSTRATE_MIN_COVER = 0.7  # of its lines' intensity in the scan under peaks, or the substrate is not there
SUBSTRATE_HALF_WIDTH_DEG = 0.4  # about a peak found at a substrate's line


def _structure(group: str, lattice, species, coords):
    from pymatgen.core import Lattice, Structure

    return Structure.from_spacegroup(group, Lattice.from_parameters(*lattice), species, coords)


# substrates and holders often seen beside a sample, from their standard structure descriptions
SUBSTRATES = {
    "FTO": lambda: _structure("P4_2/mnm", (4.737, 4.737, 3.186, 90, 90, 90), ["Sn", "O"],
                              [[0, 0, 0], [0.307, 0.307, 0]]),  # cassiterite SnO2 (F-doped tin oxide glass)
    "ITO": lambda: _structure("Ia-3", (10.117, 10.117, 10.117, 90, 90, 90), ["In", "In", "O"],
                              [[0.25, 0.25, 0.25], [-0.0333, 0, 0.25], [0.3905, 0.155, 0.382]]),  # bixbyite In2O3
    "Si": lambda: _structure("Fd-3m", (5.431, 5.431, 5.431, 90, 90, 90), ["Si"], [[0, 0, 0]]),
    "Au": lambda: _structure("Fm-3m", (4.078, 4.078, 4.078, 90, 90, 90), ["Au"], [[0, 0, 0]]),
    "Pt": lambda: _structure("Fm-3m", (3.924, 3.924, 3.924, 90, 90, 90), ["Pt"], [[0, 0, 0]]),
    "Al": lambda: _structure("Fm-3m", (4.0495, 4.0495, 4.0495, 90, 90, 90), ["Al"], [[0, 0, 0]]),
}
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


def validate_substrates(names: Iterable) -> list[str]:
    """Substrate names as ``SUBSTRATES`` spells them (any case), or a ``PatternError`` naming the unknown one."""
    known = {name.lower(): name for name in SUBSTRATES}
    out = []
    for name in names:
        if not isinstance(name, str) or name.strip().lower() not in known:
            raise PatternError(f"unknown substrate {name!r}; known: {', '.join(SUBSTRATES)}")
        out.append(known[name.strip().lower()])
    return out


@lru_cache(maxsize=32)
def _substrate_lines(name: str, wavelength_angstrom: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """2θ (degrees), d (Å) and intensity of a substrate's lines at a wavelength, cached: building a cubic structure
    from its space group alone takes pymatgen ~1 s, and a batch names the same substrate at one wavelength."""
    from tasks.xrd import PowderXRDSimulator

    sticks = PowderXRDSimulator(wavelength_angstrom, (0.0, 180.0)).get_pattern(SUBSTRATES[name]())
    return sticks.two_theta_deg, sticks.d_angstrom, sticks.intensity


def substrate_regions(pattern: PowderPattern, substrate: str) -> list[tuple[float, float]]:
    """Regions (degrees 2θ) about the pattern's peaks that lie on one of ``substrate``'s lines (those of at least
    ``SUBSTRATE_LINE_MIN_INTENSITY`` of its strongest, at the pattern's wavelength).

    The substrate's d-spacings are scaled first, within ``SUBSTRATE_SCALE_RANGE``, to put the most line intensity
    under peaks (doping, strain and sample displacement move them together); a peak is then the substrate's within
    ``SUBSTRATE_MATCH_DEG`` of a line. One loose tolerance instead would take out the sample's own lines that
    happen to lie within 1 % in d of the substrate's (three of rutile's for silicon). Unless its lines carrying
    ``SUBSTRATE_MIN_COVER`` of its intensity are seen, the substrate is taken to be absent: a scale can always put
    one line under some peak of the sample."""
    from tasks.features import find_pattern_peaks

    tt = pattern.two_theta_deg
    line_tt, line_d, line_weight = _substrate_lines(validate_substrates([substrate])[0], pattern.wavelength_angstrom)
    in_scan = (line_tt >= tt[0]) & (line_tt <= tt[-1])
    q = find_pattern_peaks(pattern).q_inv_angstrom
    if not in_scan.any() or not len(q):
        return []
    line_d, line_weight = line_d[in_scan], line_weight[in_scan]
    strong = line_weight >= SUBSTRATE_LINE_MIN_INTENSITY * line_weight.max()
    line_d, line_weight = line_d[strong], line_weight[strong]
    peak_tt = 2.0 * np.degrees(np.arcsin(np.clip(q * pattern.wavelength_angstrom / (4.0 * np.pi), 0.0, 1.0)))
    scales = 1.0 + np.linspace(-SUBSTRATE_SCALE_RANGE, SUBSTRATE_SCALE_RANGE, 81)
    sin_theta = pattern.wavelength_angstrom / (2.0 * line_d[None, :] * scales[:, None])
    line_tt = 2.0 * np.degrees(np.arcsin(np.clip(sin_theta, 0.0, 1.0)))  # (scales, lines)
    near = np.abs(line_tt[:, :, None] - peak_tt[None, None, :]) < SUBSTRATE_MATCH_DEG  # (scales, lines, peaks)
    covered = (near.any(axis=2) * line_weight).sum(axis=1)
    best = np.flatnonzero(covered == covered.max())
    best = best[np.argmin(np.abs(scales[best] - 1.0))]  # of equal covers, the least change
    if covered[best] < SUBSTRATE_MIN_COVER * line_weight.sum():
        return []
    on_a_line = near[best].any(axis=0)
    return [(max(0.0, float(t) - SUBSTRATE_HALF_WIDTH_DEG), float(t) + SUBSTRATE_HALF_WIDTH_DEG)
            for t in peak_tt[on_a_line]]


def take_out(pattern: PowderPattern, regions: Sequence[tuple[float, float]] = (),
             substrates: Sequence[str] = ()) -> tuple[PowderPattern, list[tuple[float, float]]]:
    """``pattern`` with ``regions`` and the lines it shows of each of ``substrates`` excluded, and every region
    taken out (the typed ones first)."""
    every = validate_regions(regions) + [r for name in substrates for r in substrate_regions(pattern, name)]
    return exclude_regions(pattern, every), every
