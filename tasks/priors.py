"""Space-group priors: how often each space group occurs among the materials a user is likely to measure.

A classifier's probabilities carry the label frequencies of its training set. The shipped XRD model learns from
synthetic crystals whose space groups are far from those of real materials (spglib relabelling and placement
failures favour high symmetry: Fm-3m 12 % of the synthetic labels against 8 % in MP, P2_1/c 1.3 % against 8 %,
Pnma 1.6 % against 6 %). Bayes' rule moves a calibrated posterior to another prior without retraining
(Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori probabilities"):

    p_target(sg | x) ∝ p_train(sg | x) · (π_target(sg) / π_train(sg)) ^ strength

``mp``: materials per space group among 36,737 Materials Project structures (``tasks/pretrained/
mp_space_group_counts.csv``, written by ``bench/make_space_group_prior.py``), plus one per group, so no group is
ruled out; applied at ``MP_PRIOR_STRENGTH``. ``training``: no change.

Why half strength, on 24,000 measured-like patterns of the 8,000 MP training materials of ``bench/accuracy.py``
(never its test materials; the shipped model saw none of them), strength 0 / 0.25 / 0.5 / 0.75 / 1: log-loss
4.37 / 4.19 / 4.07 / 4.00 / 3.98, ECE 0.046 / 0.039 / 0.040 / 0.048 / 0.059, SG top-1 0.162 / 0.179 / 0.191 /
0.196 / 0.199. The full correction is best by log-loss but makes the probabilities over-confident (the synthetic
model's likelihoods are themselves too sharp on real patterns): 0.5 is the largest strength that leaves the
calibration no worse than the model's own. The measured patterns of BENCHMARKS.md (c), most of them one thin-film
perovskite family (Pm-3m), lose crystal-system accuracy under the full prior (0.45 -> 0.34): they were looked
at too, and they also favour the half strength (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

PRIORS = ("mp", "training")
N_SPACE_GROUPS = 230
MP_PRIOR_STRENGTH = 0.5


@dataclass(frozen=True, eq=False)
class SpaceGroupPrior:
    """Probabilities of the 230 space groups (``probabilities[n - 1]`` for space group ``n``), and how far
    (0-1, as an exponent of the prior ratio) answers are moved to them."""

    name: str
    probabilities: np.ndarray
    strength: float = 1.0


@lru_cache(maxsize=None)
def space_group_prior(name: str) -> SpaceGroupPrior | None:
    """The prior called ``name`` (one of ``PRIORS``); ``None`` for ``training`` (answers as the model learnt)."""
    if name == "training":
        return None
    if name != "mp":
        raise ValueError(f"unknown space-group prior {name!r}: choose one of {', '.join(PRIORS)}")
    text = resources.files("tasks.pretrained").joinpath("mp_space_group_counts.csv").read_text()
    rows = [line.split(",") for line in text.splitlines() if line and not line.startswith(("#", "space_group"))]
    counts = np.zeros(N_SPACE_GROUPS)
    for number, materials in rows:
        counts[int(number) - 1] = float(materials)
    smoothed = counts + 1.0
    probabilities = smoothed / smoothed.sum()
    probabilities.setflags(write=False)
    return SpaceGroupPrior(name, probabilities, MP_PRIOR_STRENGTH)


def class_frequencies(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Frequency of each of ``classes`` among ``labels``, plus one per class (the training prior of a model)."""
    counts = np.array([np.count_nonzero(labels == c) for c in classes], dtype=float) + 1.0
    return counts / counts.sum()
