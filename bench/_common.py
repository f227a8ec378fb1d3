"""Helpers shared by the benchmarks: locating ../shared/data and writing sections of BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import re
import sys
import tarfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPACEGROUP_SHARED_DATA", REPO.parent / "shared" / "data"))
BENCHMARKS_MD = REPO / "BENCHMARKS.md"


def require_shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        print(f"skipped: {path} is absent (real data lives in ../shared/data beside the checkout)")
        sys.exit(0)
    return path


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers in BENCHMARKS.md."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python", f"bench/{name}.py", *sys.argv[1:]])
    block = f"<!-- {name} -->\n{body.rstrip()}\n\n_Written by `{command}` on {stamp} ({machine()})._\n<!-- /{name} -->"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"<!-- {name} -->.*?<!-- /{name} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)


CGCNN_MATERIALS = 36737


def mp_structures(count: int = 0, start: int = 0, step: int = 1, indices=None):
    """(material id, Structure, spglib SG at 0.1) from the CGCNN Materials Project set: the entries
    ``start, start + step, ...`` (``count`` of them), or those at ``indices``."""
    import csv

    from pymatgen.core import Structure

    root = require_shared("cgcnn_mp_crysxpp")
    labels = {}
    with open(root / "labels_spglib.csv") as fh:
        for row in csv.DictReader(fh):
            labels[f"data/{row['cif_index']}.cif"] = (row["material_id"], int(row["spg_number_symprec0.1"]))
    chosen = range(start, start + count * step, step) if indices is None else indices
    wanted = {f"data/{i}.cif" for i in chosen}
    out = []
    with tarfile.open(root / "cifs.tar.gz") as tar, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for member in tar:
            if member.name in wanted:
                mp_id, sg = labels[member.name]
                out.append((mp_id, Structure.from_str(tar.extractfile(member).read().decode(), fmt="cif"), sg))
    return out


def held_out_draw(n_train: int, n_test: int, seed: int = 0):
    """The MP draw of ``bench/accuracy.py``: ``n_train + n_test`` evenly spaced CGCNN materials, split by material
    (a seeded permutation; the first ``n_test`` are held out). Returns (records, train indices, test indices)."""
    import numpy as np

    step = CGCNN_MATERIALS // (n_train + n_test)
    records = mp_structures(n_train + n_test, start=3, step=step)
    order = np.random.default_rng(seed).permutation(len(records))
    return records, order[n_test:], order[:n_test]


class MPDraw(NamedTuple):
    """The features of ``bench/accuracy.py``'s MP draw: ``train`` (groups number the training materials, the
    draw's first, then with ``add_remaining`` every other CGCNN material), ``test`` (two patterns of each held-out
    material), the training materials' lines (row = group) and labels (index = group)."""

    train: Any
    test: Any
    train_lines: Any
    train_labels: Any
    n_test_materials: int


def mp_draw_features(n_train: int, n_test: int, augment: int = 3, add_remaining: bool = False) -> MPDraw:
    """Features and lines of the draw ``held_out_draw(n_train, n_test)`` (``augment`` measured-like patterns per
    training material, 2 per test material), with ``add_remaining`` every CGCNN material outside the draw added to
    the training side. Cached in bench/out; the structures are read only for what is not cached yet."""
    import numpy as np

    from tasks.datasets import FeatureSet, xrd_feature_set
    from tasks.features import XRD_FEATURE_VERSION
    from tasks.isotype_refinement import LINES_VERSION, LineTable, line_table

    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    draw = []

    def records():  # (records, train indices, test indices), read once and only on a cache miss
        if not draw:
            draw.extend(held_out_draw(n_train, n_test))
            recs, train_idx, test_idx = draw
            assert not {recs[i][0] for i in test_idx} & {recs[i][0] for i in train_idx}
        return draw

    def lines(name: str, structures) -> LineTable:
        cache = out / f"mp-{LINES_VERSION}-{name}.npz"
        if cache.exists():
            with np.load(cache) as d:
                return LineTable.from_arrays(d)
        table = line_table(structures())
        np.savez_compressed(cache, **table.to_arrays())
        return table

    cache = out / f"mp-features-{XRD_FEATURE_VERSION}-{n_train}-{n_test}-{augment}.npz"
    if cache.exists():
        with np.load(cache) as d:
            train = FeatureSet(d["Xtr"], d["ytr"], d["gtr"], XRD_FEATURE_VERSION)
            test = FeatureSet(d["Xte"], d["yte"], d["gte"], XRD_FEATURE_VERSION)
    else:
        recs, train_idx, test_idx = records()
        train = xrd_feature_set([recs[i][1] for i in train_idx], [recs[i][2] for i in train_idx],
                                n_augment=augment, seed=11)
        test = xrd_feature_set([recs[i][1] for i in test_idx], [recs[i][2] for i in test_idx], n_augment=2, seed=12)
        np.savez_compressed(cache, Xtr=train.X, ytr=train.space_group, gtr=train.groups, Xte=test.X,
                            yte=test.space_group, gte=test.groups)
    train_lines = lines(f"{n_train}-{n_test}", lambda: [records()[0][i][1] for i in records()[1]])
    if add_remaining:
        step = CGCNN_MATERIALS // (n_train + n_test)
        drawn = set(range(3, 3 + (n_train + n_test) * step, step))
        outside = [i for i in range(CGCNN_MATERIALS) if i not in drawn]
        cache = out / f"mp-features-{XRD_FEATURE_VERSION}-remaining-{n_train}-{n_test}-{augment}.npz"
        if cache.exists():
            with np.load(cache) as d:
                remaining = FeatureSet(d["X"], d["y"], d["g"], XRD_FEATURE_VERSION)
        else:
            recs = mp_structures(indices=outside)
            remaining = xrd_feature_set([r[1] for r in recs], [r[2] for r in recs], n_augment=augment, seed=13)
            np.savez_compressed(cache, X=remaining.X, y=remaining.space_group, g=remaining.groups)
        train_lines = LineTable.concatenate([train_lines, lines(
            f"remaining-{n_train}-{n_test}", lambda: [r[1] for r in mp_structures(indices=outside)])])
        # groups number materials: the remaining ones follow the draw's training materials
        train = FeatureSet(np.vstack([train.X, remaining.X]),
                           np.concatenate([train.space_group, remaining.space_group]),
                           np.concatenate([train.groups, remaining.groups + n_train]), XRD_FEATURE_VERSION)
    # labels by group: every material gives patterns (so it is in the cached draws), so this is one per material
    train_labels = train.space_group[np.unique(train.groups, return_index=True)[1]]
    return MPDraw(train, test, train_lines, train_labels, len(np.unique(test.groups)))


def cached_lattice_cells(X):
    """``lattice_cells`` of the rows for every search of ``LATTICE_SEARCHES`` (cached by the rows' hash; a cache
    holding the first searches only is extended by the others)."""
    import hashlib

    import numpy as np

    from tasks.features import XRD_FEATURE_VERSION
    from tasks.lattice_evidence import LATTICE_SEARCHES, lattice_cells

    key = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float32).tobytes()).hexdigest()[:16]
    cache = REPO / "bench" / "out" / f"lattice-cells-{XRD_FEATURE_VERSION}-{key}.npz"
    cells = np.zeros((len(X), 0))
    if cache.exists():
        with np.load(cache) as d:
            cells = d["cells"]
    missing = tuple(LATTICE_SEARCHES)[cells.shape[1] // 2:]
    if missing:
        cells = np.hstack([cells, lattice_cells(X, XRD_FEATURE_VERSION, n_jobs=0, lattices=missing)])
        np.savez_compressed(cache, cells=cells)
    return cells
