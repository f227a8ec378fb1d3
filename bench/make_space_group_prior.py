"""Writes tasks/pretrained/mp_space_group_counts.csv: materials per space group in the Materials Project structures
of ../shared/data (the CGCNN set, 36,737 entries, spglib labels at symprec 0.1), the ``mp`` prior of tasks/priors.py.

    python bench/make_space_group_prior.py

Aggregate counts only (no structure, formula or identifier), from Materials Project data (CC-BY-4.0).
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import REPO, require_shared  # noqa: E402

OUT = REPO / "tasks" / "pretrained" / "mp_space_group_counts.csv"


def main() -> None:
    root = require_shared("cgcnn_mp_crysxpp")
    with open(root / "labels_spglib.csv") as fh:
        counts = Counter(int(row["spg_number_symprec0.1"]) for row in csv.DictReader(fh))
    lines = ["# Materials per space group (spglib, symprec 0.1) among the 36,737 Materials Project structures of the",
             "# CGCNN formation-energy set (Xie & Grossman 2018; Materials Project data, CC-BY-4.0).",
             "# Written by `python bench/make_space_group_prior.py`.",
             "space_group,materials"]
    lines += [f"{number},{counts.get(number, 0)}" for number in range(1, 231)]
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT} ({sum(counts.values())} materials, {len(counts)} space groups)")


if __name__ == "__main__":
    main()
