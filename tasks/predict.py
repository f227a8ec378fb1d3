"""Prediction for every input kind, as the JSON objects of the ``spacegroup predict --json`` contract.

One result per input: ``input``, ``modality`` (xrd | formula | structure), ``space_group`` {number, symbol},
``crystal_system``, ``extinction_group`` {id, label, space_groups}, ``top_k`` [{number, symbol,
probability}], ``model_version``, ``prior`` (the space-group prior the probabilities assume: ``mp`` or
``training``, see ``tasks.priors``); structures also carry ``spglib`` (the exact answer and a tolerance
sweep). A pattern given with its sample's composition is answered by both models together (``tasks.combine``):
it carries ``composition`` (the reduced formula), ``formula_model_version``, and ``prior`` is ``composition``;
each ``top_k`` entry also gives the group's ``pattern_probability`` and ``formula_probability`` (each model alone).
A bad input yields ``{"input": ..., "error": "..."}`` and the others still succeed.
"""

from __future__ import annotations

import multiprocessing
import os
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import spglib
from threadpoolctl import threadpool_limits

from tasks.cells import cell_for_answer
from tasks.combine import combine_with_formula
from tasks.crystallography import space_group_type
from tasks.excluded_regions import take_out, validate_regions, validate_substrates
from tasks.extinction import extinction_group_by_index, extinction_group_of
from tasks.features import (AMORPHOUS_FWHM_DEG, FORMULA_FEATURE_VERSION, XRD_FEATURE_VERSION, XRDPatternFeaturizer,
                            feature_columns, featurize_patterns_in_worker, strongest_feature_fwhm_deg)
from tasks.lattice_evidence import lattice_cells, lattice_evidence_dict
from tasks.models import RankedPrediction, SpaceGroupClassifier, rank_rows
from tasks.patterns import PatternError, PowderPattern
from tasks.priors import SpaceGroupPrior, space_group_prior
from tasks.readers import (PATTERN_SUFFIXES, FormulaError, StructureError, composition_of, input_kind, is_powder_cif,
                           parse_formula, read_pattern, read_pdcif, read_structures)
from tasks.symmetry import SymmetryError, disordered_site_count, symmetry_labels, tolerance_sweep
from tasks.texture import too_few_plane_families


ALL_SPACE_GROUPS = np.arange(1, 231)
COMPOSITION_CACHE_SIZE = 1024  # formula answers kept per predictor (a few KB each)

#: batches at least this large are featurised in worker processes when the predictor has ``n_jobs != 1``
PARALLEL_MIN_PATTERNS = 128
_PARALLEL_CHUNK = 32
_RANK_BLOCK = 256  # rows per model call while worker processes featurise


class PredictionError(ValueError):
    """An input that cannot be answered, with the reason in words."""


class ModelUnavailableError(PredictionError):
    """No model is registered for the modality asked for."""


@dataclass
class LoadedModel:
    """A model with the registry identity it answers under."""

    model: SpaceGroupClassifier
    version_id: int | None
    name: str
    feature_version: str

    def describe(self) -> dict:
        return {"id": self.version_id, "name": self.name, "feature_version": self.feature_version}

    def prior_for(self, wanted: SpaceGroupPrior | None) -> SpaceGroupPrior | None:
        """``wanted`` if this model can answer under it (it knows its training prior), else None (as trained)."""
        return wanted if self.model.knows_training_prior else None


def _sg(number: int) -> dict:
    return {"number": int(number), "symbol": space_group_type(int(number)).symbol}


def _result_from_ranking(name: str, modality: str, ranked: RankedPrediction, model: LoadedModel,
                         prior: SpaceGroupPrior | None) -> dict:
    ext = extinction_group_by_index(ranked.extinction_group)
    return {
        "input": name,
        "modality": modality,
        "space_group": _sg(ranked.space_groups[0]),
        "crystal_system": ranked.crystal_system,
        "crystal_system_probability": round(ranked.crystal_system_probability, 6),
        "extinction_group": ext.to_dict() | {"probability": round(ranked.extinction_group_probability, 6)},
        "top_k": [_sg(n) | {"probability": round(p, 6)} for n, p in zip(ranked.space_groups, ranked.probabilities)],
        "abstained": ranked.abstained,
        "model_version": model.describe(),
        "prior": prior.name if prior is not None else "training",
    }


def _no_peaks(name: str) -> dict:
    # a model always ranks something; with no line to read that answer is the prior in disguise
    return {"input": name, "modality": "xrd",
            "error": f"no diffraction peaks stand out of the noise in {name}, so there is nothing to index: an "
                     "amorphous sample, the background alone, or too few counts?"}


def _plane_families_warning(n_peaks: int, spacings_angstrom: list[float], with_composition: bool) -> str:
    shown = " and ".join(f"{d:.3f}" for d in spacings_angstrom)
    if n_peaks == 1:
        seen = f"only 1 peak stands out of the noise (d = {shown} Å)"
    elif len(spacings_angstrom) == 1:
        seen = f"all {n_peaks} peaks are orders of one reflection (d = {shown} Å), as in a textured film"
    else:
        seen = (f"all {n_peaks} peaks are orders of two reflections (d = {shown} Å), as in a film grown in two "
                "orientations")
    leans = ("the answer leans on the composition" if with_composition else
             "the answer is mostly the prior and its confidence is overstated")
    return (f"{seen}: so few plane spacings cannot fix a lattice, let alone a space group ({leans}); measure the "
            "powder (or the film in grazing incidence) or a wider 2θ range, or give the composition")


def _amorphous(name: str, width_deg: float, pattern: PowderPattern) -> dict:
    at = float(pattern.two_theta_deg[np.argmax(pattern.intensity)])
    return {"input": name, "modality": "xrd",
            "error": f"the strongest feature of {name} is a broad hump ({width_deg:.1f}° wide at half height, near "
                     f"2θ = {at:.0f}°), not a Bragg peak: an amorphous sample (a glass, a polymer, the holder) "
                     "has no lattice to index"}


class Predictor:
    """Answers patterns, formulas and structures with the loaded models (load once, predict many)."""

    def __init__(self, xrd: LoadedModel | None = None, formula: LoadedModel | None = None, top_k: int = 5,
                 max_sites: int = 500, max_pattern_points: int | None = None, n_jobs: int = 1,
                 prior: str = "mp") -> None:
        if xrd is not None and xrd.feature_version != XRD_FEATURE_VERSION:
            raise PredictionError(f"XRD model uses features {xrd.feature_version!r}, this code makes "
                                  f"{XRD_FEATURE_VERSION!r}; retrain or install the matching version")
        if formula is not None and formula.feature_version != FORMULA_FEATURE_VERSION:
            raise PredictionError(f"formula model uses features {formula.feature_version!r}, this code makes "
                                  f"{FORMULA_FEATURE_VERSION!r}")
        self.xrd = xrd
        self.formula = formula
        self.top_k = top_k
        wanted = space_group_prior(prior)  # the space-group prior of the answers (tasks/priors.py)
        self._xrd_prior = xrd.prior_for(wanted) if xrd is not None else None
        self._formula_prior = formula.prior_for(wanted) if formula is not None else None
        self.max_sites = max_sites
        self.max_pattern_points = max_pattern_points
        self._xrd_featurizer = XRDPatternFeaturizer()
        self._n_peaks_column = self._xrd_featurizer.feature_labels().index("n_peaks")
        self._first_q_columns = feature_columns(self._xrd_featurizer, XRD_FEATURE_VERSION,
                                                lambda name: name.startswith("peak_q_"), "the plane-families check")
        self._formula_featurizer = None
        self._composition_answers: dict[str, tuple[str, np.ndarray]] = {}
        self.n_jobs = n_jobs  # processes for featurising large pattern batches; 0 = all cores, 1 = this one
        self._pool = None

    def close(self) -> None:
        """Stop the featurisation worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _worker_count(self) -> int:
        return (os.cpu_count() or 1) if self.n_jobs == 0 else self.n_jobs

    def _uses_workers(self, n_patterns: int) -> bool:
        return self._worker_count() > 1 and n_patterns >= PARALLEL_MIN_PATTERNS

    def _feature_blocks(self, patterns: list[PowderPattern]) -> Iterator[np.ndarray]:
        """Feature rows of ``patterns`` in order, in blocks as worker processes finish them (one block in-process)."""
        if not self._uses_workers(len(patterns)):
            yield self._xrd_featurizer.featurize_many(patterns)
            return
        if self._pool is None:
            # spawn, not fork: the parent may hold XGBoost/OpenMP threads that a forked child would inherit broken
            self._pool = ProcessPoolExecutor(self._worker_count(), mp_context=multiprocessing.get_context("spawn"))
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        chunks = [patterns[i:i + _PARALLEL_CHUNK] for i in range(0, len(patterns), _PARALLEL_CHUNK)]
        yield from self._pool.map(featurize_patterns_in_worker, chunks)

    # -- patterns ---------------------------------------------------------------------------------------
    def _composition_answer(self, composition: str) -> tuple[str, np.ndarray]:
        """The reduced formula of a sample's ``composition`` and the formula model's answer for it (as trained);
        kept for the next patterns of that composition (1.7 ms of a 3 ms answer with small-batch scoring)."""
        known = self._composition_answers.get(composition)
        if known is not None:
            return known
        try:
            parsed = parse_formula(composition)
        except FormulaError as exc:
            raise PredictionError(f"composition: {exc}") from None
        if self.formula is None:
            raise ModelUnavailableError("a composition is read by the formula model, and none is registered; run "
                                        "`spacegroup train --modality formula`")
        answer = parsed.reduced_formula, self.formula.model.predict_proba(self._formula_features([parsed]))
        if len(self._composition_answers) >= COMPOSITION_CACHE_SIZE:
            self._composition_answers.pop(next(iter(self._composition_answers)))  # the oldest
        self._composition_answers[composition] = answer
        return answer

    def _formula_features(self, compositions: list) -> np.ndarray:
        if self._formula_featurizer is None:
            from tasks.features import FormulaFeaturizer

            self._formula_featurizer = FormulaFeaturizer()
        return self._formula_featurizer.featurize_many(compositions)

    def _rank_patterns(self, X: np.ndarray, formula_answer: np.ndarray | None,
                       cells: np.ndarray | None = None) -> list[tuple[RankedPrediction, list]]:
        """Each row's ranking and, with a composition, each ranked group's probability from the pattern alone and
        from the formula alone, as their own answers give them (under the predictor's prior); with the rows'
        lattice ``cells``, the pattern's answer is corrected by them (``tasks.lattice_evidence``)."""
        model = self.xrd.model
        if formula_answer is None:
            return [(ranked, None) for ranked in model.rank(X, self.top_k, self._xrd_prior, cells)]
        as_trained = model.predict_proba(X, lattice_cells=cells)
        training = model.class_prior_ if model.knows_training_prior else np.ones(len(model.classes_))
        proba = combine_with_formula(as_trained, model.classes_, training, formula_answer, self.formula.model.classes_)
        pattern_alone = np.zeros((len(X), len(ALL_SPACE_GROUPS)))
        pattern_alone[:, model.classes_ - 1] = model.under_prior(as_trained, self._xrd_prior)
        formula_alone = np.zeros(len(ALL_SPACE_GROUPS))
        formula_alone[self.formula.model.classes_ - 1] = self.formula.model.under_prior(formula_answer,
                                                                                       self._formula_prior)[0]
        return [(ranked, [(float(pattern_alone[row, g - 1]), float(formula_alone[g - 1])) for g in ranked.space_groups])
                for row, ranked in enumerate(rank_rows(proba, ALL_SPACE_GROUPS, self.top_k, model.abstain_threshold))]

    def _require_lattice_evidence(self) -> None:
        if not self.xrd.model.has_lattice_evidence:
            raise PredictionError(f"the XRD model {self.xrd.name!r} was trained without the lattice evidence; "
                                  "retrain it with `spacegroup train --lattice-evidence`, or ask without it")

    def predict_patterns(self, patterns: list[PowderPattern], names: list[str], cells: bool = False,
                         composition: str | None = None, lattice_evidence: bool = False) -> list[dict]:
        """Answers for ``patterns``; with ``cells``, each also carries a ``cell`` of its answer's lattice that
        indexes its peaks (``tasks.cells``; None where none is found or the lattice is not searched); with
        ``composition`` (a formula, the samples'), the formula model's answer for it is combined with each
        pattern's (``tasks.combine``); with ``lattice_evidence``, each pattern is indexed by the searches the
        model's stage reads (the primitive cubic, tetragonal, hexagonal and orthorhombic lattices, and orthorhombic
        cells thinned by a C centring or Pnma's rules) and the model corrects its crystal systems by the cells
        (``tasks.lattice_evidence``; ~0.6 s a pattern), which the answer reports."""
        if self.xrd is None:
            raise ModelUnavailableError("no XRD model is registered; run `spacegroup train --modality xrd`")
        if not patterns:
            return []
        if lattice_evidence:
            self._require_lattice_evidence()  # before any pattern is featurised
        reduced, formula_answer = self._composition_answer(composition) if composition else (None, None)
        ranked: list[tuple[RankedPrediction, list | None]] = []
        waiting: list[np.ndarray] = []
        peak_counts: list[np.ndarray] = []
        first_peaks: list[np.ndarray] = []  # the first peaks' Q, as the feature rows keep them
        found_cells: list[np.ndarray] = []
        pooled = self._uses_workers(len(patterns))
        # while worker processes featurise on every core, BLAS threads here only spin against them (measured on
        # 1,200 patterns, 2 cores: 0.65 s of this process's CPU time with them, 0.26 s with one thread)
        with threadpool_limits(1, user_api="blas") if pooled else nullcontext():
            # rank blocks while the workers featurise the rest: the model's time overlaps theirs
            for block in self._feature_blocks(patterns):
                waiting.append(block)
                peak_counts.append(block[:, self._n_peaks_column])
                first_peaks.append(block[:, self._first_q_columns])
                if sum(len(b) for b in waiting) >= _RANK_BLOCK:
                    ranked += self._rank_block(np.vstack(waiting), formula_answer, lattice_evidence, found_cells)
                    waiting = []
            if waiting:
                ranked += self._rank_block(np.vstack(waiting), formula_answer, lattice_evidence, found_cells)
        n_peaks = np.concatenate(peak_counts)
        first_q_rows = np.vstack(first_peaks)
        lattice_rows = np.vstack(found_cells) if found_cells else [None] * len(patterns)
        out = []
        for pattern, name, (answer, evidence), count, first_q, row in zip(patterns, names, ranked, n_peaks,
                                                                          first_q_rows, lattice_rows):
            if count == 0:
                out.append(_no_peaks(name))
            elif count <= 2 and (width := strongest_feature_fwhm_deg(pattern)) > AMORPHOUS_FWHM_DEG:
                out.append(_amorphous(name, width, pattern))
            else:
                result = _result_from_ranking(name, "xrd", answer, self.xrd, self._xrd_prior)
                if (spacings := too_few_plane_families(first_q[:int(count)])) is not None:
                    result["warnings"] = [_plane_families_warning(int(count), spacings, reduced is not None)]
                    result["abstained"] = result["abstained"] or reduced is None
                if reduced is not None:
                    result |= {"prior": "composition", "composition": reduced,
                               "formula_model_version": self.formula.describe()}
                    for entry, (from_pattern, from_formula) in zip(result["top_k"], evidence):
                        entry |= {"pattern_probability": round(from_pattern, 6),
                                  "formula_probability": round(from_formula, 6)}
                if row is not None:
                    result["lattice_evidence"] = lattice_evidence_dict(row, self.xrd.model.lattice_searches)
                if cells:
                    result["cell"] = cell_for_answer(pattern, result["space_group"]["number"])
                out.append(result)
        return out

    def _rank_block(self, X: np.ndarray, formula_answer: np.ndarray | None, lattice_evidence: bool,
                    found_cells: list[np.ndarray]) -> list[tuple[RankedPrediction, list]]:
        searches = self.xrd.model.lattice_searches
        cells = lattice_cells(X, XRD_FEATURE_VERSION, self.n_jobs, searches) if lattice_evidence else None
        if cells is not None:
            found_cells.append(cells)
        return self._rank_patterns(X, formula_answer, cells)

    def _predict_by_composition(self, patterns: list[PowderPattern], names: list[str],
                                compositions: list[str | None], cells: bool = False,
                                lattice_evidence: bool | list[bool] = False) -> list[dict]:
        """``predict_patterns`` once per composition among ``compositions`` (each pattern's, or None) and
        ``lattice_evidence`` (for all, or each pattern's); a composition the predictor refuses errors its own
        patterns only, not the others of the batch."""
        evidence = [lattice_evidence] * len(patterns) if isinstance(lattice_evidence, bool) else lattice_evidence
        out: list[dict | None] = [None] * len(patterns)
        for composition, with_evidence in dict.fromkeys(zip(compositions, evidence)):
            rows = [i for i, key in enumerate(zip(compositions, evidence)) if key == (composition, with_evidence)]
            try:
                if composition:
                    self._composition_answer(composition)
                if with_evidence and self.xrd is not None:
                    self._require_lattice_evidence()
            except PredictionError as exc:
                results = [{"input": names[i], "modality": "xrd", "error": str(exc)} for i in rows]
            else:
                results = self.predict_patterns([patterns[i] for i in rows], [names[i] for i in rows], cells,
                                                composition, with_evidence)
            for i, result in zip(rows, results):
                out[i] = result
        return out  # type: ignore[return-value]

    def predict_pattern(self, pattern: PowderPattern, name: str = "pattern", cells: bool = False,
                        composition: str | None = None, lattice_evidence: bool = False) -> dict:
        return self.predict_patterns([pattern], [name], cells, composition, lattice_evidence)[0]

    # -- formulas ---------------------------------------------------------------------------------------
    def predict_formulas(self, formulas: list[str]) -> list[dict]:
        out: list[dict | None] = [None] * len(formulas)
        good, comps = [], []
        for i, text in enumerate(formulas):
            try:
                comps.append(parse_formula(text))
                good.append(i)
            except FormulaError as exc:
                out[i] = {"input": text, "modality": "formula", "error": str(exc)}
        if good:
            if self.formula is None:
                for i in good:
                    out[i] = {"input": formulas[i], "modality": "formula",
                              "error": "no formula model is registered; run `spacegroup train --modality formula`"}
            else:
                X = self._formula_features(comps)
                for i, ranked in zip(good, self.formula.model.rank(X, self.top_k, self._formula_prior)):
                    out[i] = _result_from_ranking(formulas[i], "formula", ranked, self.formula, self._formula_prior)
        return out  # type: ignore[return-value]

    # -- structures -------------------------------------------------------------------------------------
    def predict_structure(self, structure, name: str = "structure") -> dict:
        try:
            labels = symmetry_labels(structure)
        except SymmetryError as exc:
            raise PredictionError(str(exc)) from None
        ext = extinction_group_of(labels.space_group_number)
        return {
            "input": name,
            "modality": "structure",
            "space_group": _sg(labels.space_group_number),
            "crystal_system": labels.crystal_system,
            "crystal_system_probability": 1.0,
            "extinction_group": ext.to_dict() | {"probability": 1.0},
            "top_k": [_sg(labels.space_group_number) | {"probability": 1.0}],
            "abstained": False,
            "model_version": {"id": None, "name": f"spglib-{spglib.__version__}", "feature_version": None},
            "spglib": labels.to_dict() | {"tolerance_sweep": tolerance_sweep(structure),
                                          "disordered_sites": disordered_site_count(structure)},
        }

    # -- parsed requests (API and batch jobs) ------------------------------------------------------------
    def predict_inputs(self, inputs: list) -> list[dict]:
        """Answers for :class:`tasks.inputs.PredictionInput` items, patterns batched through the model."""
        out: list[dict | None] = [None] * len(inputs)
        patterns = [(i, item) for i, item in enumerate(inputs) if item.modality == "xrd"]
        results = self._predict_by_composition([p.value for _, p in patterns], [p.name for _, p in patterns],
                                               [p.composition for _, p in patterns],
                                               lattice_evidence=[p.lattice_evidence for _, p in patterns])
        for (i, item), result in zip(patterns, results):
            out[i] = _with_excluded(result, item.excluded_two_theta_deg)
        formulas = [(i, item) for i, item in enumerate(inputs) if item.modality == "formula"]
        if formulas:
            for (i, _), result in zip(formulas, self.predict_formulas([f.value for _, f in formulas])):
                out[i] = result
        for i, item in enumerate(inputs):
            if item.modality == "structure":
                try:
                    out[i] = self.predict_structure(item.value, item.name)
                except PredictionError as exc:
                    out[i] = {"input": item.name, "modality": "structure", "error": str(exc)}
        return out  # type: ignore[return-value]

    # -- files ------------------------------------------------------------------------------------------
    def predict_paths(self, paths: Iterable[str | Path], wavelength: str | float | None = None,
                      batch_size: int = 256, excluded_two_theta_deg: Sequence[tuple[float, float]] = (),
                      substrates: Sequence[str] = (), cells: bool = False,
                      composition: str | dict[str, str] | None = None,
                      lattice_evidence: bool = False) -> Iterator[dict]:
        """Results for files and directories (recursed, sorted); patterns are batched through the model, each with
        the ``excluded_two_theta_deg`` regions and the lines it shows of ``substrates`` taken out first
        (``tasks.excluded_regions``), with ``cells`` an indexed cell of its answer's lattice, and with a
        ``composition`` answered together with the formula model: one formula for every pattern, or a table of
        each file's (``tasks.readers.read_compositions``; files it does not list are answered from the pattern), and
        with ``lattice_evidence`` each corrected by its indexed cells (``predict_patterns``)."""
        for formula in ([composition] if isinstance(composition, str) else (composition or {}).values()):
            self._composition_answer(formula)  # a bad composition is refused before any file is read
        if lattice_evidence and self.xrd is not None:
            self._require_lattice_evidence()  # before any file is read, as a bad composition
        pending: list[tuple[str, PowderPattern, list, str | None]] = []
        excluded, substrates = validate_regions(excluded_two_theta_deg), validate_substrates(substrates)

        def flush():
            if pending:
                results = self._predict_by_composition([p for _, p, _, _ in pending], [n for n, _, _, _ in pending],
                                                       [c for _, _, _, c in pending], cells, lattice_evidence)
                for (_, _, regions, _), result in zip(pending, results):
                    yield _with_excluded(result, regions)
                pending.clear()

        for path in expand_paths(paths):
            name = str(path)
            kind = input_kind(path)
            if kind == "structure" and is_powder_cif(path):
                kind = "pattern"
            try:
                if kind == "pattern" and path.suffix.lower() == ".cif":
                    pending.append((name, *take_out(read_pdcif(path, wavelength, self.max_pattern_points), excluded,
                                                    substrates), composition_of(composition, path)))
                    if len(pending) >= batch_size:
                        yield from flush()
                elif kind == "structure":
                    yield from flush()
                    for block_name, structure in read_structures(path, self.max_sites):
                        yield (self.predict_structure(structure, block_name) if not isinstance(structure, Exception)
                               else {"input": block_name, "modality": "structure", "error": str(structure)})
                elif kind == "pattern":
                    pending.append((name, *take_out(read_pattern(path, wavelength, self.max_pattern_points), excluded,
                                                    substrates), composition_of(composition, path)))
                    if len(pending) >= batch_size:
                        yield from flush()
                else:
                    raise PredictionError(
                        f"{path.name}: unknown file type {path.suffix or '(none)'}; use a pattern "
                        f"({' '.join(sorted(PATTERN_SUFFIXES))}) or a structure (.cif, POSCAR)")
            except (PatternError, StructureError, PredictionError, ValueError) as exc:
                yield from flush()
                yield {"input": name, "modality": {"structure": "structure", "pattern": "xrd"}.get(kind, None),
                       "error": str(exc)}
        yield from flush()


def _with_excluded(result: dict, regions: Sequence[tuple[float, float]]) -> dict:
    """A pattern's answer, saying which 2θ regions were taken out of it first (none: unchanged)."""
    return result | {"excluded_two_theta_deg": [list(region) for region in regions]} if regions else result


def expand_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path

