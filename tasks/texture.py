"""A pattern that shows one or two families of lattice planes only: every peak an order (Q, 2Q, 3Q, ...) of one or
two reflections.

A textured film or an oriented crystal on a Bragg-Brentano diffractometer shows only the planes parallel to the
surface, so its peaks are the orders of one reflection (a (100)-oriented perovskite film's (100), (200), (300)),
or of two where grains grow in two orientations. One or two interplanar spacings cannot fix a lattice, let alone a
space group. A single peak is the extreme case. Powder patterns of real crystals almost never look like this:
none of 1,600 measured-like MP patterns of bench/accuracy.py's set (b) with 3 peaks or more did, while 21 of the
100 measured patterns of ../shared/data (thin films) do (bench/plane_families.py).
"""

from __future__ import annotations

import numpy as np

#: an order matches where Q / Q_family is within this fraction of an integer n (times n): peaks are located to
#: ~0.05° of 2θ, ~0.4 % of Q at 14°
ORDER_RELATIVE_TOLERANCE = 0.01
#: two families need this many peaks to be told from a powder: any two peaks are two spacings
MIN_PEAKS_FOR_TWO_FAMILIES = 3


def plane_family_spacings_angstrom(q_inv_angstrom: np.ndarray) -> list[float]:
    """The spacings d = 2π / Q (Å) of the reflections whose orders the peaks at ``q_inv_angstrom`` (Å⁻¹) are, from
    the lowest Q up: each peak that is not an order of an earlier family starts one."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    families: list[float] = []
    for x in np.sort(q[np.isfinite(q) & (q > 0)]):
        if not any(abs(x / f - round(x / f)) < ORDER_RELATIVE_TOLERANCE * round(x / f) for f in families):
            families.append(float(x))
    return [float(2.0 * np.pi / f) for f in families]


def too_few_plane_families(q_inv_angstrom: np.ndarray) -> list[float] | None:
    """The spacings (Å) where the peaks are the orders of one reflection (one peak counts), or of two with at least
    ``MIN_PEAKS_FOR_TWO_FAMILIES`` peaks: too few plane spacings to fix a lattice. None otherwise, or without
    peaks."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    n_peaks = int(np.sum(np.isfinite(q) & (q > 0)))
    spacings = plane_family_spacings_angstrom(q)
    if len(spacings) == 1 or (len(spacings) == 2 and n_peaks >= MIN_PEAKS_FOR_TWO_FAMILIES):
        return spacings
    return None
