"""Formula training data from a local table (CSV with a formula column and a space-group column).

Rows with unparsable formulas or labels outside 1-230 are reported, not silently dropped. Groups are the
reduced formulas, so polymorphs of one composition never straddle a train/test split.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.datasets import FeatureSet
from tasks.features import FORMULA_FEATURE_VERSION, FormulaFeaturizer
from tasks.readers import FormulaError, parse_formula

log = logging.getLogger(__name__)


def read_formula_table(path: str | Path, formula_column: str, label_column: str) -> tuple[list, np.ndarray, list[str], list[str]]:
    """``(compositions, space_groups, reduced_formulas, rejected)`` from a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    table = pd.read_csv(path, encoding="latin-1")
    for column in (formula_column, label_column):
        if column not in table.columns:
            raise ValueError(f"{path.name} has no column {column!r}; columns are {list(table.columns)}")
    comps, labels, groups, rejected = [], [], [], []
    for i, (formula, label) in enumerate(zip(table[formula_column], table[label_column])):
        try:
            sg = int(label)
            if not 1 <= sg <= 230:
                raise ValueError
        except (TypeError, ValueError):
            rejected.append(f"row {i + 2}: space group {label!r} is not 1-230")
            continue
        try:
            comp = parse_formula(str(formula))
        except FormulaError as exc:
            rejected.append(f"row {i + 2}: {exc}")
            continue
        comps.append(comp)
        labels.append(sg)
        groups.append(comp.reduced_formula)
    return comps, np.array(labels), groups, rejected


def _featurize_chunk(formulas: list[str]) -> np.ndarray:
    from pymatgen.core import Composition

    featurizer = FormulaFeaturizer()
    return featurizer.featurize_many([Composition(f) for f in formulas])


def formula_feature_set(compositions: list, space_groups: np.ndarray, groups: list[str], n_jobs: int = 0,
                        chunk_size: int = 500) -> FeatureSet:
    formulas = [c.formula for c in compositions]
    chunks = [formulas[i:i + chunk_size] for i in range(0, len(formulas), chunk_size)]
    workers = (os.cpu_count() or 1) if n_jobs == 0 else n_jobs
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_featurize_chunk, chunks))
    else:
        parts = [_featurize_chunk(c) for c in chunks]
    X = np.vstack(parts)
    _, group_ids = np.unique(np.asarray(groups), return_inverse=True)
    return FeatureSet(X, np.asarray(space_groups), group_ids, FORMULA_FEATURE_VERSION)
