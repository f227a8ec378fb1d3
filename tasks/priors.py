"""Space-group priors: how often each space group occurs among the materials a user is likely to measure.

A classifier's probabilities carry the label frequencies of its training set. The shipped XRD model learns from
synthetic crystals whose space groups are far from those of real materials (spglib relabelling and placement
failures favour high symmetry: Fm-3m 12 % of the synthetic labels against 8 % in MP, P2_1/c 1.3 % against 8 %,
Pnma 1.6 % against 6 %). Bayes' rule moves a calibrated posterior to another prior without retraining
(Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to new a priori probabilities"):

    p_target(sg | x) ∝ p_train(sg | x) · π_target(sg) / π_train(sg)

``mp``: materials per space group among 36,737 Materials Project structures (``tasks/pretrained/
mp_space_group_counts.csv``, written by ``bench/make_space_group_prior.py``), plus one per group, so no group is
ruled out. ``training``: no change. Measured on 24,000 measured-like patterns of 8,000 MP materials the shipped
model never saw (BENCHMARKS.md): the log-loss falls monotonically from the training prior to the full ``mp``
prior (4.37 -> 3.98), so the full correction is used, with no tuning knob.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

PRIORS = ("mp", "training")
N_SPACE_GROUPS = 230


@dataclass(frozen=True, eq=False)
class SpaceGroupPrior:
    """Probabilities of the 230 space groups (``probabilities[n - 1]`` for space group ``n``)."""

    name: str
    probabilities: np.ndarray


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
    return SpaceGroupPrior(name, probabilities)


def class_frequencies(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Frequency of each of ``classes`` among ``labels``, plus one per class (the training prior of a model)."""
    counts = np.array([np.count_nonzero(labels == c) for c in classes], dtype=float) + 1.0
    return counts / counts.sum()
