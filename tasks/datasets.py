"""Training and evaluation sets: structures -> measured-like patterns -> feature matrices.

Each structure's reflections are computed once (wavelength-independent) and rendered ``n_augment`` times
with independent instrument/sample draws; every structure ``i`` uses its own generator seeded by
``(seed, i)``, so the set is identical for any number of worker processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from pymatgen.core import Structure

from tasks.augment import MeasuredLikeAugmenter
from tasks.features import XRDPatternFeaturizer
from tasks.xrd import compute_reflections

if TYPE_CHECKING:
    from tasks.isotype_refinement import LineTable

log = logging.getLogger(__name__)
D_MIN_ANGSTROM = 0.75  # covers 2θ <= 90° at Cu Kα and the Mo/Ag windows the augmenter draws


@dataclass
class FeatureSet:
    """Features with their labels; ``groups`` ties augmented copies to one structure (for honest splits)."""

    X: np.ndarray
    space_group: np.ndarray
    groups: np.ndarray
    feature_version: str
    #: lines of the structures (``tasks.isotype_refinement.LineTable``) and each row's structure in it, for the
    #: structure-type search's cell refinement; absent where the structures were not kept
    reference_lines: "LineTable | None" = None
    line_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.space_group)

    def subset(self, mask: np.ndarray) -> "FeatureSet":
        return FeatureSet(self.X[mask], self.space_group[mask], self.groups[mask], self.feature_version,
                          self.reference_lines, None if self.line_rows is None else self.line_rows[mask])


def map_chunks(function: Callable, chunks: list, n_jobs: int = 0) -> Iterator:
    """``function`` of each chunk, in order: in ``n_jobs`` worker processes (0: one per CPU) when there is more
    than one of each, else in this process."""
    workers = (os.cpu_count() or 1) if n_jobs == 0 else n_jobs
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from pool.map(function, chunks)
    else:
        yield from map(function, chunks)


def _augmented_features_chunk(args: tuple[list[tuple[int, Structure]], int, int]) -> list[tuple[int, np.ndarray]]:
    items, n_augment, seed = args
    featurizer = XRDPatternFeaturizer()
    augmenter = MeasuredLikeAugmenter()
    out = []
    for index, structure in items:
        rng = np.random.default_rng([seed, index])
        try:
            refl = compute_reflections(structure, D_MIN_ANGSTROM)
        except ValueError as exc:  # e.g. an element without scattering factors
            log.warning("structure %d skipped: %s", index, exc)
            continue
        rows = [featurizer.featurize_array(augmenter.render(refl, augmenter.sample(rng), rng)) for _ in range(n_augment)]
        out.append((index, np.vstack(rows)))
    return out


def xrd_feature_set(
    structures: Sequence[Structure],
    space_groups: Sequence[int],
    n_augment: int = 4,
    seed: int = 0,
    n_jobs: int = 0,
    chunk_size: int = 25,
    progress: Callable[[int], None] | None = None,
    with_reference_lines: bool = False,
) -> FeatureSet:
    """Measured-like XRD features for ``structures`` (``n_augment`` rows each), labelled ``space_groups``; with
    ``with_reference_lines``, also the structures' lines (``tasks.isotype_refinement.line_table``)."""
    items = list(enumerate(structures))
    chunks = [(items[i:i + chunk_size], n_augment, seed) for i in range(0, len(items), chunk_size)]
    results: list[tuple[int, np.ndarray]] = []
    for batch in map_chunks(_augmented_features_chunk, chunks, n_jobs):
        results.extend(batch)
        if progress:
            progress(len(batch))
    labels = np.asarray(space_groups)
    X = np.vstack([rows for _, rows in results]) if results else np.zeros((0, XRDPatternFeaturizer().n_features))
    groups = np.concatenate([np.full(len(rows), index) for index, rows in results]) if results else np.zeros(0, int)
    if not with_reference_lines:
        return FeatureSet(X, labels[groups], groups, XRDPatternFeaturizer.version)
    from tasks.isotype_refinement import line_table

    return FeatureSet(X, labels[groups], groups, XRDPatternFeaturizer.version, line_table(structures, n_jobs), groups)
