"""Drift between the data a champion was trained on and the newest data: features, labels, accuracy."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import ks_2samp

#: feature-name prefix -> group reported on
FEATURE_GROUPS = {
    "profile": "profile", "peak": "peaks", "strong": "peaks", "q2ratio": "peak ratios", "q2diff": "peak ratios",
    "fom": "indexing", "c": "indexing", "q": "peaks", "n": "peaks",
}


@dataclass
class DriftResult:
    feature_groups: dict = field(default_factory=dict)  # group -> {mean_ks, max_ks, n_features, drifted}
    label_psi: float = 0.0
    label_drifted: bool = False
    accuracy: dict = field(default_factory=dict)  # {reference_top1, new_top1, n_new, drop, drifted}
    n_reference: int = 0
    n_current: int = 0

    @property
    def drifted(self) -> bool:
        return (any(g["drifted"] for g in self.feature_groups.values()) or self.label_drifted
                or bool(self.accuracy.get("drifted")))

    def reasons(self) -> list[str]:
        out = [f"feature group '{name}' (mean KS {g['mean_ks']:.3f})" for name, g in self.feature_groups.items()
               if g["drifted"]]
        if self.label_drifted:
            out.append(f"space-group distribution (PSI {self.label_psi:.3f})")
        if self.accuracy.get("drifted"):
            out.append(f"champion accuracy on new materials fell by {self.accuracy['drop']:.3f}")
        return out

    def as_dict(self) -> dict:
        return {"feature_groups": self.feature_groups, "label_psi": self.label_psi,
                "label_drifted": self.label_drifted, "accuracy": self.accuracy, "n_reference": self.n_reference,
                "n_current": self.n_current, "drifted": self.drifted, "reasons": self.reasons()}


def feature_group_drift(reference: np.ndarray, current: np.ndarray, labels: list[str],
                        threshold: float) -> dict:
    """Two-sample KS statistic per feature, summarised per group (mean and max)."""
    groups: dict[str, list[float]] = {}
    for j, name in enumerate(labels):
        a, b = reference[:, j], current[:, j]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2:
            continue
        if np.ptp(a) == 0 and np.ptp(b) == 0:
            stat = 0.0 if a[0] == b[0] else 1.0
        else:
            stat = float(ks_2samp(a, b).statistic)
        groups.setdefault(FEATURE_GROUPS.get(name.split("_")[0], "other"), []).append(stat)
    return {name: {"mean_ks": round(float(np.mean(v)), 4), "max_ks": round(float(np.max(v)), 4),
                   "n_features": len(v), "drifted": bool(np.mean(v) > threshold)} for name, v in groups.items()}


def population_stability_index(reference_labels, current_labels, epsilon: float = 1e-4) -> float:
    """PSI over the union of classes: sum (p - q) ln(p / q); 0.1 slight, 0.25 significant by convention."""
    ref, cur = Counter(map(int, reference_labels)), Counter(map(int, current_labels))
    classes = sorted(set(ref) | set(cur))
    if not classes:
        return 0.0
    p = np.array([ref.get(c, 0) for c in classes], float)
    q = np.array([cur.get(c, 0) for c in classes], float)
    p = np.clip(p / max(p.sum(), 1), epsilon, None)
    q = np.clip(q / max(q.sum(), 1), epsilon, None)
    return float(np.sum((q - p) * np.log(q / p)))


def accuracy_drift(model, X_new: np.ndarray, y_new: np.ndarray, reference_top1: float | None, max_drop: float) -> dict:
    if len(y_new) == 0 or reference_top1 is None:
        return {"reference_top1": reference_top1, "new_top1": None, "n_new": int(len(y_new)), "drop": 0.0,
                "drifted": False}
    proba = model.predict_proba(X_new)
    top1 = float(np.mean(model.classes_[np.argmax(proba, axis=1)] == y_new))
    drop = reference_top1 - top1
    return {"reference_top1": round(reference_top1, 4), "new_top1": round(top1, 4), "n_new": int(len(y_new)),
            "drop": round(drop, 4), "drifted": bool(drop > max_drop)}


def compare(reference_X: np.ndarray, reference_y, current_X: np.ndarray, current_y, labels: list[str],
            ks_threshold: float, psi_threshold: float) -> DriftResult:
    groups = feature_group_drift(reference_X, current_X, labels, ks_threshold)
    psi = population_stability_index(reference_y, current_y)
    return DriftResult(feature_groups=groups, label_psi=round(psi, 4), label_drifted=bool(psi > psi_threshold),
                       n_reference=len(reference_y), n_current=len(current_y))


def drift_markdown(result: DriftResult, title: str) -> str:
    lines = [f"# {title}", "", f"**Drift: {'yes' if result.drifted else 'no'}**"
             + (f" ({'; '.join(result.reasons())})" if result.drifted else ""), "",
             f"Reference rows: {result.n_reference}; current rows: {result.n_current}.", "",
             "| feature group | features | mean KS | max KS | drifted |", "|---|---:|---:|---:|---|"]
    lines += [f"| {name} | {g['n_features']} | {g['mean_ks']:.3f} | {g['max_ks']:.3f} | {g['drifted']} |"
              for name, g in result.feature_groups.items()]
    lines += ["", f"Space-group PSI: {result.label_psi:.3f} (drifted: {result.label_drifted})", ""]
    acc = result.accuracy
    if acc:
        lines.append(f"Champion SG top-1 at training: {acc.get('reference_top1')}; on {acc.get('n_new')} new "
                     f"materials: {acc.get('new_top1')} (drifted: {acc.get('drifted')})")
    return "\n".join(lines) + "\n"
