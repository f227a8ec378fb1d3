"""XGBoost tree ensembles evaluated from flat node arrays, for the small batches an online service sees.

XGBoost's predictor has a fixed cost per tree and call (about 0.5 µs per tree: 2.4 ms for a 4,600-tree model even
for one row), which dominates single-pattern latency. Each row walks each tree from its root in a numba-compiled
loop, visiting only the nodes on its path: for a depth-7 XRD model of 9,849 trees that was ~1 ms a row, where
walking all trees level by level as numpy arrays took ~5 ms and XGBoost ~7 ms. For large batches XGBoost is
faster again; the crossover is measured in ``bench/model_latency.py`` and
``SpaceGroupClassifier.prepare_small_batches`` switches to this evaluator below it (the API does at start-up).
Results equal XGBoost's margins to float32 rounding (``tests/science/test_models.py``).

Only numerical splits (``split_type`` 0) are supported, which is what this project trains.
"""

from __future__ import annotations

import json

import numba
import numpy as np
import orjson
import xgboost as xgb


class CompiledForest:
    """The trees of the first ``n_iterations`` boosting rounds of a multi-class (or binary logistic) booster, as
    flat node arrays."""

    def __init__(self, booster: xgb.Booster, n_iterations: int) -> None:
        model = orjson.loads(booster.save_raw("json"))
        learner = model["learner"]
        n_classes = max(1, int(learner["learner_model_param"]["num_class"]))
        trees = learner["gradient_booster"]["model"]["trees"][: n_iterations * n_classes]
        tree_class = np.asarray(learner["gradient_booster"]["model"]["tree_info"][: len(trees)], dtype=np.int64)
        base = np.asarray(json.loads(learner["learner_model_param"]["base_score"].replace("E", "e")), dtype=np.float64)
        if learner["objective"]["name"] == "binary:logistic":
            base = np.log(base / (1.0 - base))  # stored as a probability; the margin starts at its logit
        self.base_margin = np.broadcast_to(base, (n_classes,)).copy()
        if any(any(t["split_type"]) for t in trees):
            raise ValueError("categorical splits are not supported by the compiled evaluator")
        sizes = np.array([len(t["left_children"]) for t in trees], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        left = np.concatenate([np.asarray(t["left_children"], np.int64) for t in trees])
        right = np.concatenate([np.asarray(t["right_children"], np.int64) for t in trees])
        shift = np.repeat(offsets, sizes)
        leaf = left == -1
        # a leaf points to itself, so walking past the bottom of a shallow tree changes nothing
        index = np.arange(len(left))
        self.left = np.where(leaf, index, left + shift)
        self.right = np.where(leaf, index, right + shift)
        self.feature = np.concatenate([np.asarray(t["split_indices"], np.int64) for t in trees])
        self.threshold = np.concatenate([np.asarray(t["split_conditions"], np.float32) for t in trees])
        self.default_left = np.concatenate([np.asarray(t["default_left"], bool) for t in trees])
        self.value = np.where(leaf, self.threshold.astype(np.float64), 0.0)  # a leaf's value sits in its condition
        self.roots = offsets
        self.tree_class = tree_class
        self.n_classes = n_classes

    def margins(self, X: np.ndarray) -> np.ndarray:
        """Raw margins (n_rows, n_classes), as ``Booster.predict(..., output_margin=True)``."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        return _walk(X, self.roots, self.left, self.right, self.feature, self.threshold, self.default_left,
                     self.value, self.tree_class, self.base_margin)


@numba.njit(cache=True, nogil=True)
def _walk(X, roots, left, right, feature, threshold, default_left, value, tree_class, base_margin):
    """Each row down each tree (a leaf is its own child); leaf values summed per class onto the base margin."""
    out = np.empty((X.shape[0], base_margin.shape[0]))
    for r in range(X.shape[0]):
        out[r, :] = base_margin
        for t in range(roots.shape[0]):
            node = roots[t]
            while left[node] != node:
                x = X[r, feature[node]]
                if np.isnan(x):
                    go_left = default_left[node]
                else:
                    go_left = x < threshold[node]
                node = left[node] if go_left else right[node]
            out[r, tree_class[t]] += value[node]
    return out
