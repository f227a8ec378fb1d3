"""How often ``spacegroup predict --cell`` recovers the true cell of monoclinic Materials Project structures from
their measured-like patterns (tasks/monoclinic_indexing.py, refined by tasks/cells.py), against the bare search
it starts from, in the same run.

For the monoclinic structures of an evenly spaced draw from the CGCNN set: one measured-like Cu Kα pattern each
(bench/cell_indexing.py's augmentation), its peaks, and the cell of its true space group's lattice. A monoclinic
lattice has many settings (the choice of a and c, an mC lattice's C or I centring), so cells are compared as
lattices: right means the Niggli-reduced primitive cells agree, every length within 0.3 % (of the conventional
cell's times the pattern's strain) and the volume within 0.5 %.

    python bench/monoclinic_indexing.py [--materials 3000 --limit 200 --start 2]

``--start 1`` is the tuning draw (the settings of tasks/monoclinic_indexing.py were chosen on it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import CGCNN_MATERIALS, SHARED, mp_structures, write_section  # noqa: E402

LENGTH_TOLERANCE = 0.003
VOLUME_TOLERANCE = 0.005
C_TO_PRIMITIVE = np.array([[0.5, 0.5, 0.0], [-0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])  # rows: primitive vectors of a C cell
RELATED_VOLUMES = (0.25, 1 / 3, 0.5, 2.0, 3.0, 4.0)


def _reduced(lattice):
    """Niggli-reduced lattice's sorted lengths (Å) and volume (Å^3)."""
    reduced = lattice.get_niggli_reduced_lattice()
    return np.sort(reduced.abc), reduced.volume


def _primitive_lattice(a: float, b: float, c: float, beta_deg: float, centred: bool):
    """A monoclinic cell's primitive lattice (a C-centred cell's primitive vectors where ``centred``)."""
    from pymatgen.core import Lattice

    lattice = Lattice.from_parameters(a, b, c, 90.0, beta_deg, 90.0)
    return Lattice(C_TO_PRIMITIVE @ lattice.matrix) if centred else lattice


def _baseline(q, wavelength):
    """The bare search: the primitive rule at 0.05°, no refinement, no centred settings."""
    from pymatgen.core import Lattice

    from tasks.dichotomy_indexing import peak_tolerance_s
    from tasks.monoclinic_indexing import index_monoclinic

    q20 = np.sort(q)[:20]
    found = index_monoclinic((q20 / (2 * np.pi)) ** 2, peak_tolerance_s(q20, wavelength, 0.05), "P")
    return None if found is None else Lattice.from_parameters(found[2], found[3], found[4], 90.0, found[5], 90.0)


def measured_table() -> list[str]:
    """The measured IUCr powder CIFs of a monoclinic phase: indexed cell against the Rietveld-refined one."""
    import csv
    import re

    from tasks.cells import cell_for_answer
    from tasks.crystallography import space_group_type
    from tasks.readers import read_pdcif

    root = SHARED / "iucr_rietveld_pxrd_cifs"
    if not (root / "labels.csv").exists():
        return []
    lines = ["| measured pattern | space group | Rietveld cell (Å, °) | indexed cell (Å, °) | same lattice | largest "
             "length error (reduced cells) | peaks indexed | M |", "|---|---|---|---|---|---|---|---|"]
    for row in csv.DictReader(open(root / "labels.csv")):
        number = int(row["space_group_number"] or 0)
        if not number or space_group_type(number).crystal_system != "monoclinic" or row["n_phases_in_file"] != "1":
            continue
        text = (root / row["file"]).read_text(errors="replace")
        truth = [float(re.search(rf"_cell_{x}\s+([0-9.]+)", text).group(1))
                 for x in ("length_a", "length_b", "length_c", "angle_beta")]
        shown = ", ".join(f"{x:.4f}" for x in truth)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cell = cell_for_answer(read_pdcif(root / row["file"], float(row["wavelength_A"])), number)
        if cell is None:
            lines.append(f"| {row['file']} | {number} | {shown} | none found | | | | |")
            continue
        rietveld = _primitive_lattice(*truth, space_group_type(number).bravais_lattice == "mC")
        found = _primitive_lattice(cell["a_angstrom"], cell["b_angstrom"], cell["c_angstrom"], cell["beta_deg"],
                                   cell["lattice"] == "mC")
        (true_abc, true_volume), (abc, volume) = _reduced(rietveld), _reduced(found)
        error = float(np.max(np.abs(abc / true_abc - 1)))
        same = error < LENGTH_TOLERANCE and abs(volume / true_volume - 1) < VOLUME_TOLERANCE
        lines.append(f"| {row['file']} | {number} | {shown} | {cell['a_angstrom']:.4f}, {cell['b_angstrom']:.4f}, "
                     f"{cell['c_angstrom']:.4f}, {cell['beta_deg']:.3f} ({cell['lattice']}) | "
                     f"{'yes' if same else 'no'} | {error:.2%} | {cell['peaks_indexed']}/{cell['peaks_used']} | {cell['de_wolff_m']:.0f} |")
    return lines


def _thread_check(inputs: list) -> str:
    """The same answers in one thread and in one per core (the searches of an answer's rules side by side), timed
    alternately, pattern by pattern: the speed-up as a ratio in one run."""
    from tasks.cells import index_answer

    spent = {"one": 0.0, "all": 0.0}
    same = True
    for i, (q, wavelength, number) in enumerate(inputs):
        answers = {}
        for name in ("one", "all") if i % 2 else ("all", "one"):
            start = time.perf_counter()
            cell = index_answer(q, wavelength, number, threads=1 if name == "one" else None)
            spent[name] += time.perf_counter() - start
            answers[name] = None if cell is None else cell.to_dict()
        same &= answers["one"] == answers["all"]
    return (f"Threads: the first {len(inputs)} patterns answered in one thread took {spent['one']:.1f} s, with one "
            f"thread per core ({os.cpu_count()}) {spent['all']:.1f} s: {spent['one'] / max(spent['all'], 1e-9):.2f}x "
            f"faster, {'the same' if same else 'DIFFERENT'} answers.")


def main() -> None:
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from tasks.augment import MeasuredLikeAugmenter
    from tasks.cells import index_answer
    from tasks.crystallography import space_group_type
    from tasks.features import find_pattern_peaks
    from tasks.xrd import PowderXRDSimulator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--materials", type=int, default=3000, help="evenly spaced CGCNN materials to draw from")
    parser.add_argument("--limit", type=int, default=200, help="monoclinic structures of the draw indexed, at most")
    parser.add_argument("--start", type=int, default=2, help="the draw's first index (1: the tuning draw)")
    parser.add_argument("--no-write", action="store_true", help="print only (tuning runs)")
    parser.add_argument("--thread-check", type=int, default=40,
                        help="patterns answered again in one thread and in one per core, for the speed-up")
    args = parser.parse_args()
    step = CGCNN_MATERIALS // args.materials
    records = [r for r in mp_structures(indices=list(range(args.start, args.start + args.materials * step, step)))
               if space_group_type(r[2]).crystal_system == "monoclinic"][:args.limit]
    simulator, augmenter = PowderXRDSimulator(two_theta_range_deg=(0, 150)), MeasuredLikeAugmenter()
    rows: dict[str, dict[str, list]] = {}
    times: dict[str, list[float]] = {"cells": [], "baseline": []}
    inputs = []
    for i, (_, structure, number) in enumerate(records):
        rng = np.random.default_rng((2, i))
        sample = augmenter.sample(rng, wavelength="CuKa")
        pattern = augmenter.render(simulator.reflections(structure), sample, rng)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            primitive = SpacegroupAnalyzer(structure, symprec=0.1).get_primitive_standard_structure().lattice
        true_abc, true_volume = _reduced(primitive)
        true_abc, true_volume = true_abc * (1 + sample.strain), true_volume * (1 + sample.strain) ** 3
        peaks = find_pattern_peaks(pattern)
        inputs.append((peaks.q_inv_angstrom, pattern.wavelength_angstrom, number))
        start = time.perf_counter()
        cell = index_answer(peaks.q_inv_angstrom, pattern.wavelength_angstrom, number)
        times["cells"].append(time.perf_counter() - start)
        start = time.perf_counter()
        baseline = _baseline(peaks.q_inv_angstrom, pattern.wavelength_angstrom)
        times["baseline"].append(time.perf_counter() - start)

        def judged(lattice):
            if lattice is None:
                return False, False
            abc, volume = _reduced(lattice)
            right = bool(np.all(np.abs(abc / true_abc - 1) < LENGTH_TOLERANCE)
                         and abs(volume / true_volume - 1) < VOLUME_TOLERANCE)
            related = not right and any(abs(volume / (true_volume * r) - 1) < VOLUME_TOLERANCE
                                        for r in RELATED_VOLUMES)
            return right, related

        right, related = judged(None if cell is None else _primitive_lattice(
            cell.a_angstrom, cell.b_angstrom, cell.c_angstrom, cell.beta_deg, cell.lattice == "mC"))
        row = rows.setdefault(space_group_type(number).bravais_lattice,
                              {"found": [], "right": [], "related": [], "base": [], "m_right": [], "m_wrong": [],
                               "confident_right": []})
        row["found"].append(cell is not None)
        row["right"].append(right)
        row["related"].append(related)
        row["base"].append(judged(baseline)[0])
        if cell is not None:
            row["m_right" if right else "m_wrong"].append(cell.de_wolff_m)
            if cell.de_wolff_m > 20 and cell.peaks_indexed >= 0.9 * cell.peaks_used:
                row["confident_right"].append(right)
    keys = ("found", "right", "related", "base")
    lines = ["| lattice | patterns | cell returned | right (refined) | a sub- or supercell instead | right, bare "
             "search | median M of right / other cells | confident cells (M > 20, 90 % indexed): share, right |",
             "|---|---|---|---|---|---|---|---|"]
    for lattice in sorted(rows):
        row = rows[lattice]
        n = len(row["found"])
        med = "/".join(f"{np.median(row[k]):.0f}" if row[k] else "-" for k in ("m_right", "m_wrong"))
        confident = row["confident_right"]
        lines.append(f"| {lattice} | {n} | " + " | ".join(f"{np.mean(row[k]):.2f}" for k in keys) + f" | {med} | "
                     f"{len(confident) / n:.2f}, {np.mean(confident) if confident else 0:.2f} |")
    n = sum(len(row["found"]) for row in rows.values())
    lines.append(f"| all | {n} | " + " | ".join(f"{np.mean([v for row in rows.values() for v in row[k]]):.2f}"
                                                for k in keys) + " | | |")
    threads = _thread_check(inputs[:args.thread_check])
    body = "\n".join([
        "## Monoclinic cells behind XRD answers (bench/monoclinic_indexing.py)", "",
        f"The first {n} monoclinic Materials Project structures of an evenly spaced draw of {args.materials} CGCNN "
        f"materials from index {args.start} (the settings were chosen on the draw from index 1), one measured-like "
        "Cu Kα pattern each (zero shift, displacement, strain, background, noise, texture, impurity lines), indexed "
        "for their true space group's lattice (`index_answer`: the P search, for mC answers the C and I settings, "
        "and the group's own glide and screw conditions in each of its settings, each cell refined with its zero "
        "shift on the first 20 peaks and judged by de Wolff's M20). "
        f"Right: the Niggli-reduced primitive cells agree, lengths within {LENGTH_TOLERANCE:.1%} and volume within "
        f"{VOLUME_TOLERANCE:.1%} (the true cell's times the pattern's strain): any setting of the right lattice "
        "counts. A sub- or supercell: the volume 1/4, 1/3, 1/2, 2, 3 or 4 times the true one. Bare search: "
        "tasks.monoclinic_indexing's primitive search alone (0.05°, no refinement, no centred settings).", "",
        *lines, "",
        f"Time per pattern (peaks given), mean / 95th percentile / largest: {np.mean(times['cells']):.2f} / "
        f"{np.percentile(times['cells'], 95):.2f} / {np.max(times['cells']):.2f} s refined; bare search "
        f"{np.mean(times['baseline']):.2f} s.", "", threads,
        "", "Measured patterns (the IUCr Rietveld powder CIFs of ../shared/data with one monoclinic phase), indexed "
        "for their published space group, against the cell the authors refined (compared as reduced cells):", "",
        *measured_table(),
    ])
    print(body)
    if not args.no_write:
        write_section("monoclinic_indexing", body)


if __name__ == "__main__":
    main()
