"""Evaluation of a space-group classifier: accuracies at every level, calibration, abstention, plots.

All metrics take the probability matrix over ``classes`` and the true space-group numbers, so any model
(including the k-NN baseline) is scored the same way in the same run.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support, roc_auc_score

from tasks.crystallography import CRYSTAL_SYSTEMS, space_group_type
from tasks.extinction import extinction_group_of
from tasks.models import marginal_matrix

ECE_BINS = 15


def top_k_accuracy(proba: np.ndarray, classes: np.ndarray, y: np.ndarray, k: int) -> float:
    top = classes[np.argsort(-proba, axis=1)[:, :k]]
    return float(np.mean(np.any(top == y[:, None], axis=1)))


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE with equal-width confidence bins (Naeini et al. 2015)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


def ece_sampling_floor(confidence: np.ndarray, bins: int = ECE_BINS, draws: int = 200, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model would still show on this many answers at these confidences.

    Each answer is drawn right with probability equal to its confidence, ``draws`` times; the mean ECE of the draws
    is what sampling alone contributes, so a measured ECE near it says nothing more can be read from this set.
    """
    if len(confidence) == 0:
        return 0.0
    rng = np.random.default_rng(seed)
    return float(np.mean([expected_calibration_error(confidence, (rng.random(len(confidence)) < confidence)
                                                     .astype(float), bins) for _ in range(draws)]))


def coverage_curve(confidence: np.ndarray, correct: np.ndarray, thresholds=(0.0, 0.3, 0.5, 0.7, 0.9)) -> list[dict]:
    rows = []
    for t in thresholds:
        kept = confidence >= t
        rows.append({"threshold": t, "coverage": float(kept.mean()),
                     "accuracy": float(correct[kept].mean()) if kept.any() else None})
    return rows


def evaluate_probabilities(proba: np.ndarray, classes: np.ndarray, y_true) -> dict:
    """Every metric this project reports, as a JSON-able dict."""
    y = np.asarray(y_true).astype(int)
    classes = np.asarray(classes).astype(int)
    pred = classes[np.argmax(proba, axis=1)]
    confidence = proba.max(axis=1)
    correct = pred == y
    out: dict = {"n": int(len(y))}
    for k in (1, 3, 5):
        out[f"sg_top{k}"] = top_k_accuracy(proba, classes, y, k)
    for level in ("crystal_system", "extinction_group"):
        M, labels = marginal_matrix(classes, level)
        level_pred = labels[np.argmax(proba @ M, axis=1)]
        if level == "crystal_system":
            truth = np.array([space_group_type(int(v)).crystal_system for v in y])
        else:
            truth = np.array([extinction_group_of(int(v)).index for v in y])
        out[f"{level}_accuracy"] = float(np.mean(level_pred.astype(str) == truth.astype(str)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" is expected on small sets
        p, r, f, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
        out["sg_balanced_accuracy"] = float(balanced_accuracy_score(y, pred))
    out.update(sg_macro_precision=float(p), sg_macro_recall=float(r), sg_macro_f1=float(f))
    out["ece"] = expected_calibration_error(confidence, correct.astype(float))
    out["ece_sampling_floor"] = ece_sampling_floor(confidence)
    out["coverage"] = coverage_curve(confidence, correct.astype(float))
    out["sg_ovr_roc_auc"] = _ovr_auc(proba, classes, y)
    labels, support = np.unique(y, return_counts=True)
    out["support"] = {int(a): int(b) for a, b in zip(labels, support)}
    out["unseen_class_fraction"] = float(np.mean(~np.isin(y, classes)))
    return out


def _ovr_auc(proba, classes, y) -> float | None:
    present = np.isin(classes, y)
    seen = np.isin(y, classes)
    if present.sum() < 2 or seen.sum() < 2:
        return None
    sub = proba[seen][:, present]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    try:
        return float(roc_auc_score(y[seen], sub, multi_class="ovr", labels=classes[present], average="macro"))
    except ValueError:
        return None


def plot_confusion_and_calibration(proba: np.ndarray, classes: np.ndarray, y_true, out_dir: Path, title: str) -> dict:
    """Crystal-system confusion matrix and reliability diagram as PNGs; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y = np.asarray(y_true).astype(int)
    M, labels = marginal_matrix(np.asarray(classes), "crystal_system")
    pred = labels[np.argmax(proba @ M, axis=1)]
    truth = np.array([space_group_type(int(v)).crystal_system for v in y])
    cm = np.zeros((7, 7))
    for t, p in zip(truth, pred):
        cm[CRYSTAL_SYSTEMS.index(t), CRYSTAL_SYSTEMS.index(p)] += 1
    norm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(7), CRYSTAL_SYSTEMS, rotation=45, ha="right")
    ax.set_yticks(range(7), CRYSTAL_SYSTEMS)
    for i in range(7):
        for j in range(7):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: crystal system")
    fig.tight_layout()
    confusion_path = out_dir / "confusion_crystal_system.png"
    fig.savefig(confusion_path, dpi=110)
    plt.close(fig)

    classes = np.asarray(classes)
    confidence = proba.max(axis=1)
    correct = (classes[np.argmax(proba, axis=1)] == y).astype(float)
    edges = np.linspace(0, 1, ECE_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, ECE_BINS - 1)
    centers, accs, counts = [], [], []
    for b in range(ECE_BINS):
        mask = which == b
        if mask.any():
            centers.append(confidence[mask].mean())
            accs.append(correct[mask].mean())
            counts.append(mask.sum())
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.scatter(centers, accs, s=np.array(counts) / max(counts) * 200 + 10, label="space group (bins)")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}: reliability (ECE {expected_calibration_error(confidence, correct):.3f})")
    ax.legend(loc="upper left")
    fig.tight_layout()
    calibration_path = out_dir / "calibration.png"
    fig.savefig(calibration_path, dpi=110)
    plt.close(fig)
    return {"confusion_png": str(confusion_path), "calibration_png": str(calibration_path)}


def knn_baseline_proba(X_train, y_train, X_test, profile_columns: np.ndarray, k: int = 10):
    """The plain baseline: k-nearest neighbours (cosine) on the Q-grid profile alone. Returns (proba, classes)."""
    from sklearn.neighbors import KNeighborsClassifier

    def prep(X):
        P = np.nan_to_num(np.asarray(X)[:, profile_columns], nan=0.0)
        return P / np.clip(np.linalg.norm(P, axis=1, keepdims=True), 1e-12, None)

    knn = KNeighborsClassifier(n_neighbors=k, weights="distance", metric="euclidean", n_jobs=-1)
    knn.fit(prep(X_train), np.asarray(y_train).astype(int))
    return knn.predict_proba(prep(X_test)), knn.classes_
