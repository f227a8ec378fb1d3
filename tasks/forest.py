"""XGBoost tree ensembles evaluated with numpy, for the small batches an online service sees.

XGBoost's predictor has a fixed cost per tree and call (about 0.5 µs per tree: 2.4 ms for the shipped XRD model's
4,623 trees even for one row), which dominates single-pattern latency. Walking all trees level by level as numpy
arrays costs a fraction of that for a handful of rows; for large batches XGBoost is faster again. The crossover
is measured in ``bench/model_latency.py``; ``SpaceGroupClassifier.prepare_small_batches`` switches to this
evaluator below it (the API does at start-up). Results equal XGBoost's margins to float32 rounding
(``tests/science/test_models.py``).

Only numerical splits (``split_type`` 0) are supported, which is what this project trains.
"""

from __future__ import annotations

import json

import numpy as np
import orjson
import xgboost as xgb


class NumpyForest:
    """The trees of the first ``n_iterations`` boosting rounds of a multi-class booster, as flat node arrays."""

    def __init__(self, booster: xgb.Booster, n_iterations: int) -> None:
        model = orjson.loads(booster.save_raw("json"))
        learner = model["learner"]
        n_classes = max(1, int(learner["learner_model_param"]["num_class"]))
        trees = learner["gradient_booster"]["model"]["trees"][: n_iterations * n_classes]
        tree_class = np.asarray(learner["gradient_booster"]["model"]["tree_info"][: len(trees)], dtype=np.int64)
        base = json.loads(learner["learner_model_param"]["base_score"].replace("E", "e"))
        self.base_margin = np.broadcast_to(np.asarray(base, dtype=np.float64), (n_classes,)).copy()
        if any(any(t["split_type"]) for t in trees):
            raise ValueError("categorical splits are not supported by the numpy evaluator")
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
        self._round_robin = len(trees) % n_classes == 0 and np.array_equal(
            tree_class, np.tile(np.arange(n_classes), len(trees) // n_classes))
        self.depth = _depth(self.roots, left + shift, right + shift, leaf)

    def margins(self, X: np.ndarray) -> np.ndarray:
        """Raw margins (n_rows, n_classes), as ``Booster.predict(..., output_margin=True)``."""
        X = np.asarray(X, dtype=np.float32)
        rows = np.arange(len(X))[:, None]
        node = np.broadcast_to(self.roots, (len(X), len(self.roots))).copy()
        for _ in range(self.depth):
            x = X[rows, self.feature[node]]
            go_left = np.where(np.isnan(x), self.default_left[node], x < self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaf_values = self.value[node]  # (n_rows, n_trees)
        if self._round_robin:  # tree t belongs to class t % n_classes, as XGBoost lays out multi-class models
            return leaf_values.reshape(len(X), -1, self.n_classes).sum(axis=1) + self.base_margin
        out = np.zeros((len(X), self.n_classes))
        for k in range(len(X)):
            out[k] = np.bincount(self.tree_class, weights=leaf_values[k], minlength=self.n_classes)
        return out + self.base_margin


def _depth(roots: np.ndarray, left: np.ndarray, right: np.ndarray, leaf: np.ndarray) -> int:
    """Depth of the deepest tree: walk all trees level by level from their roots."""
    frontier, depth = roots[~leaf[roots]], 0
    while len(frontier):
        children = np.concatenate([left[frontier], right[frontier]])
        frontier, depth = children[~leaf[children]], depth + 1
    return depth
