"""A pattern that shows one family of lattice planes only: every peak an order (h, 2h, 3h, ...) of the first.

A textured film or an oriented crystal on a Bragg-Brentano diffractometer shows only the planes parallel to the
surface, so its peaks are the orders of one reflection, at Q, 2Q, 3Q, ... (a (100)-oriented perovskite film's
(100), (200), (300)). One interplanar spacing cannot fix a lattice, let alone a space group: any lattice with a
plane spacing of d indexes the pattern. A single peak is the extreme case. Powder patterns of real crystals almost
never look like this (none of 1,600 measured-like MP patterns of bench/accuracy.py's set (b) did), while 13 of the
100 measured patterns of ../shared/data (thin films) do (bench/one_plane_family.py).
"""

from __future__ import annotations

import numpy as np

#: an order matches where Q / Q_first is within this fraction of an integer n (times n): peaks are located to
#: ~0.05° of 2θ, ~0.4 % of Q at 14°
ORDER_RELATIVE_TOLERANCE = 0.01


def single_plane_family_d_angstrom(q_inv_angstrom: np.ndarray) -> float | None:
    """The spacing d = 2π / Q_first (Å) of the one reflection whose orders every peak at ``q_inv_angstrom``
    (Å⁻¹) is, or None where the peaks are not all orders of one reflection (or there are none)."""
    q = np.asarray(q_inv_angstrom, dtype=float)
    q = np.sort(q[np.isfinite(q) & (q > 0)])
    if len(q) == 0:
        return None
    order = np.round(q / q[0])
    if np.all(np.abs(q / q[0] - order) < ORDER_RELATIVE_TOLERANCE * order):
        return float(2.0 * np.pi / q[0])
    return None
