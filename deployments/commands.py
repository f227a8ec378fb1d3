"""Handlers of the ``spacegroup`` subcommands: parse nothing, decide nothing; call tasks/ and storage/."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm


class UserFacingError(RuntimeError):
    """An error to print as one line, without a traceback."""


def _registry():
    from storage.artifacts import default_store
    from storage.engine import get_engine
    from tasks.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    return settings, get_engine(), default_store()


def _progress_bar(total_crystals: int, total_patterns: int):
    bars = {"crystals": tqdm(total=total_crystals, desc="crystals", unit="xtal", leave=False, file=sys.stderr),
            "patterns": tqdm(total=total_crystals, desc="patterns", unit="xtal", leave=False, file=sys.stderr)}

    def update(kind: str, n: int) -> None:
        bars[kind].update(n)

    return update, bars


def load_predictor(top_k: int = 5, prior: str | None = None):
    """A predictor over the registry's champions (bootstrapping the shipped models into a fresh registry).

    A missing or modified artifact, or a model made for other features, is a :class:`UserFacingError`.
    """
    from storage.artifacts import ArtifactIntegrityError
    from tasks.models import ModelFormatError
    from tasks.predict import PredictionError

    try:
        return _load_predictor(top_k, prior)
    except (ArtifactIntegrityError, ModelFormatError, PredictionError) as exc:
        raise UserFacingError(f"cannot load the champion model: {exc}") from None


def _load_predictor(top_k: int, prior: str | None = None):
    from tasks.serving import load_champion_predictor

    settings, engine, store = _registry()
    return load_champion_predictor(engine, store, top_k, settings.max_sites, settings.max_pattern_points,
                                   n_jobs=settings.n_jobs, prior=prior or settings.space_group_prior)


def cmd_predict(args) -> int:
    from tasks.excluded_regions import parse_regions, validate_substrates
    from tasks.patterns import PatternError
    from tasks.predict import PredictionError
    from tasks.xrd import resolve_wavelength

    formulas = list(args.formula)
    if args.formulas:
        if not args.formulas.is_file():
            raise UserFacingError(f"{args.formulas} does not exist")
        formulas += [line.strip() for line in args.formulas.read_text().splitlines() if line.strip()]
    if not args.paths and not formulas:
        raise UserFacingError("nothing to predict: give pattern/structure paths, --formula or --formulas")
    if args.wavelength is not None:
        try:
            resolve_wavelength(args.wavelength)
        except ValueError as exc:
            raise UserFacingError(str(exc)) from None
    if args.top_k < 1:
        raise UserFacingError("--top-k must be at least 1")
    try:
        excluded = parse_regions(",".join(args.exclude_two_theta))
    except PatternError as exc:
        raise UserFacingError(f"--exclude-two-theta: {exc}") from None
    try:
        substrates = validate_substrates(args.substrate)
    except PatternError as exc:
        raise UserFacingError(f"--substrate: {exc}") from None
    composition = args.composition
    if args.composition is not None or args.compositions is not None:
        from tasks.readers import FormulaError, parse_formula, read_compositions

        if args.composition is not None and args.compositions is not None:
            raise UserFacingError("give --composition (every pattern's) or --compositions (a table), not both")
        try:
            if args.composition is not None:
                parse_formula(args.composition)
            else:
                composition = read_compositions(args.compositions)
        except FormulaError as exc:
            option = "--composition" if args.composition is not None else "--compositions"
            raise UserFacingError(f"{option}: {exc}") from None
        if not args.paths:
            raise UserFacingError("--composition is the composition of the patterns given: give pattern paths")
    predictor = load_predictor(args.top_k, args.prior)
    n_errors = 0
    try:
        results = (list(predictor.predict_paths(args.paths, args.wavelength, excluded_two_theta_deg=excluded,
                                               substrates=substrates, cells=args.cell,
                                               composition=composition, lattice_evidence=args.lattice_evidence))
                   if args.paths else [])
        results += predictor.predict_formulas(formulas) if formulas else []
    except PredictionError as exc:  # what refuses the whole request (a model without --lattice-evidence)
        raise UserFacingError(str(exc)) from None
    finally:
        predictor.close()
    for result in results:
        n_errors += "error" in result
        if args.json:
            print(json.dumps(result))
        else:
            print(_human(result))
    return 1 if n_errors and n_errors == len(results) else 0


def _human(result: dict) -> str:
    if "error" in result:
        return f"{result['input']}: ERROR {result['error']}"
    top = ", ".join(f"{t['symbol']} ({t['number']}) {t['probability']:.2f}" for t in result["top_k"])
    ext = result["extinction_group"]
    flag = "  [abstained: low confidence]" if result.get("abstained") and not result.get("warnings") else ""
    flag += "".join(f"  [{'abstained; ' if result.get('abstained') else ''}warning: {w}]"
                    for w in result.get("warnings", []))
    given = f", with {result['composition']}" if result.get("composition") else ""
    return (f"{result['input']} [{result['modality']}{given}]: {result['space_group']['symbol']} "
            f"({result['space_group']['number']}), {result['crystal_system']} "
            f"(p={result['crystal_system_probability']:.2f}); extinction group {ext['id']} {ext['label']}; "
            f"top: {top}{flag}{_human_sources(result)}{_human_lattices(result)}{_human_cell(result)}")


def _human_sources(result: dict) -> str:
    """With a composition: what the pattern and the formula alone give the answer's group."""
    first = result["top_k"][0]
    if "pattern_probability" not in first:
        return ""
    return (f"; {first['symbol']} from the pattern alone {first['pattern_probability']:.2f}, from the formula alone "
            f"{first['formula_probability']:.2f}")


def _human_lattices(result: dict) -> str:
    """With the lattice evidence: each lattice search's best cell's M (and fraction of peaks indexed)."""
    if "lattice_evidence" not in result:
        return ""
    cells = [f"{lattice} none" if cell is None
             else f"{lattice} M {cell['de_wolff_m']:.1f} ({cell['fraction_indexed']:.0%})"
             for lattice, cell in result["lattice_evidence"].items()]
    return "; cells: " + ", ".join(cells)


def _human_cell(result: dict) -> str:
    if "cell" not in result:
        return ""
    cell = result["cell"]
    if cell is None:
        from tasks.crystallography import crystal_system_of

        system = crystal_system_of(result["space_group"]["number"])  # the cell is the top group's lattice
        if system == "triclinic":
            return "; cell: not searched for triclinic lattices"
        return "; cell: none indexes the peaks for the answer's lattice"
    b = f", b = {cell['b_angstrom']:.4f}" if cell.get("b_angstrom") is not None else ""
    c = f", c = {cell['c_angstrom']:.4f}" if cell["c_angstrom"] is not None else ""
    c += f" Å, β = {cell['beta_deg']:.3f}°" if cell.get("beta_deg") is not None else ""
    setting = " (the space group's setting)" if cell.get("reflection_conditions") == "space group" else ""
    unit = "" if cell.get("beta_deg") is not None else " Å"
    return (f"; cell {cell['lattice']} a = {cell['a_angstrom']:.4f}{b}{c}{unit}{setting}, "
            f"zero {cell['zero_shift_two_theta_deg']:+.3f}°, {cell['peaks_indexed']}/{cell['peaks_used']} peaks "
            f"indexed, M{cell['peaks_used']} = {cell['de_wolff_m']:.1f}")


def _check_training_arguments(args) -> None:
    """Counts and margins a scientist may mistype, refused before anything is generated or trained."""
    for name, least in (("crystals", 1), ("augment", 1), ("trials", 0), ("estimators", 1)):
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise UserFacingError(f"--{name} must be at least {least}, not {value}")
    if getattr(args, "margin", None) is not None and args.margin < 0:
        raise UserFacingError(f"--margin is the SG top-1 gain a challenger must exceed to be promoted: 0 or more, "
                              f"not {args.margin:g}")


def _margin(args, settings) -> float:
    """The promotion margin: ``--margin``, else the configured one."""
    return args.margin if args.margin is not None else settings.promotion_margin


def cmd_train(args) -> int:
    from tasks.pipeline import train_and_maybe_promote
    from tasks.synthetic import GeneratorConfig

    _check_training_arguments(args)
    if args.modality == "formula":
        if args.lattice_evidence:
            raise UserFacingError("--lattice-evidence indexes patterns: it is for --modality xrd")
        return _train_formula(args)
    if args.source in ("mp", "dataset"):
        return _train_xrd_on_dataset(args)
    if args.source != "synthetic":
        raise UserFacingError("XRD models train on --source synthetic, mp or dataset")
    if not 0.0 <= args.structure_types <= 1.0:
        raise UserFacingError(f"--structure-types is a share between 0 and 1, not {args.structure_types:g}")
    settings, engine, store = _registry()
    update, bars = _progress_bar(args.crystals, args.crystals * args.augment)
    try:
        report, model = train_and_maybe_promote(
            engine, store, settings.reports_dir, n_crystals=args.crystals, n_augment=args.augment, seed=args.seed,
            n_trials=args.trials, n_estimators=args.estimators,
            margin=_margin(args, settings),
            allow_promotion=not args.no_promote, progress=update,
            generator=GeneratorConfig(prototype_fraction=args.structure_types), lattice_evidence=args.lattice_evidence)
    except ValueError as exc:  # a training set too small to fit, or for the lattice evidence
        raise UserFacingError(str(exc)) from None
    finally:
        for bar in bars.values():
            bar.close()
    if args.export:
        _export(args.export, report, model, args)
    _print_training_report(report, settings)
    return 0


def _dataset_to_train_on(args, settings, engine, store):
    """The registry dataset version ``--source mp`` (refreshed from the Materials Project first) or ``--source
    dataset`` (``--dataset-id``, else the newest) names."""
    from storage.materials import get_dataset, latest_dataset

    if args.source == "mp":
        report = _refresh(settings, engine, store, "mp", None, None, 0)
        dataset = get_dataset(engine, report.dataset_version_id) if report.dataset_version_id else None
    else:
        dataset = get_dataset(engine, args.dataset_id) if args.dataset_id else latest_dataset(engine)
    if dataset is None:
        raise UserFacingError("no dataset version to train on; run `spacegroup refresh` first"
                              if args.dataset_id is None else f"no dataset version with id {args.dataset_id}")
    return dataset


def _train_xrd_on_dataset(args) -> int:
    from tasks.pipeline import train_on_dataset_and_maybe_promote

    settings, engine, store = _registry()
    dataset = _dataset_to_train_on(args, settings, engine, store)
    try:
        report, model = train_on_dataset_and_maybe_promote(
            engine, store, settings.reports_dir, settings.cache_dir, dataset, n_augment=args.augment, seed=args.seed,
            n_estimators=args.estimators, allow_promotion=not args.no_promote, n_jobs=settings.n_jobs,
            margin=_margin(args, settings),
            lattice_evidence=True if args.lattice_evidence else None)
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None
    if args.export:
        _export(args.export, report, model, args, dataset=f"dataset {dataset.id} ({dataset.source})",
                metrics_key="frozen_holdout",
                command=f"spacegroup train --modality xrd --source {args.source} --augment {args.augment} "
                        f"--seed {args.seed} --estimators {args.estimators}"
                        + (" --lattice-evidence" if args.lattice_evidence else "") + f" --export {args.export}")
    _print_training_report(report, settings)
    return 0


def _refresh(settings, engine, store, source: str, path, crystals, seed):
    from flows.refresh import build_source
    from tasks.refresh import refresh_from_source
    from tasks.sources import SourceError

    try:
        src = build_source(settings, source, path, crystals, seed)
        return refresh_from_source(engine, store, src, settings.max_sites, settings.n_jobs)
    except SourceError as exc:
        raise UserFacingError(str(exc)) from None


def cmd_refresh(args) -> int:
    from tasks.refresh import refresh_markdown

    settings, engine, store = _registry()
    report = _refresh(settings, engine, store, args.source, args.path, args.crystals, args.seed)
    print(refresh_markdown(report))
    return 0


def cmd_serve(args) -> int:
    from deployments.serving import ensure_port_free, serve_api

    try:
        ensure_port_free(args.host, args.port, "the API", "--port")
    except RuntimeError as exc:
        raise UserFacingError(str(exc)) from None
    serve_api(args.host, args.port, args.workers, args.dev)
    return 0


def cmd_up(args) -> int:
    from deployments.serving import up

    try:
        return up(args.host, args.port, args.prefect_port)
    except RuntimeError as exc:
        raise UserFacingError(str(exc)) from None


def cmd_keys(args) -> int:
    from storage.keys import create_api_key, revoke_api_key

    _, engine, _ = _registry()
    if args.keys_command == "create":
        row, key = create_api_key(engine, args.role, args.label)
        print(f"created {args.role} key {row.id}{f' ({args.label})' if args.label else ''}; it is shown only once:")
        print(key)
        return 0
    try:
        revoke_api_key(engine, args.key_id)
    except LookupError as exc:
        raise UserFacingError(str(exc)) from None
    print(f"revoked key {args.key_id}")
    return 0


def _train_formula(args) -> int:
    from tasks.pipeline import train_formula_and_maybe_promote

    if args.source in ("mp", "dataset"):
        return _train_formula_on_dataset(args)
    if args.source != "local" or args.path is None:
        raise UserFacingError("formula models train on --source local --path TABLE.csv (columns --formula-column and "
                              "--label-column), or on a registry dataset's materials: --source mp or dataset")
    settings, engine, store = _registry()
    try:
        report, model, rejected = train_formula_and_maybe_promote(
            engine, store, settings.reports_dir, table_path=args.path, formula_column=args.formula_column,
            label_column=args.label_column, seed=args.seed, n_estimators=args.estimators,
            margin=_margin(args, settings),
            allow_promotion=not args.no_promote, n_trials=args.trials)
    except (FileNotFoundError, ValueError) as exc:
        raise UserFacingError(str(exc)) from None
    if rejected:
        print(f"{len(rejected)} rows rejected, e.g. {rejected[0]}")
    if args.export:
        _export_formula(args, report, model, f"{report.n_training_patterns} formulas from {args.path.name}",
                        f"--source local --path {args.path.name} --formula-column {args.formula_column} "
                        f"--label-column {args.label_column}")
    _print_formula_report(report)
    return 0


def _train_formula_on_dataset(args) -> int:
    from tasks.pipeline import train_formula_on_dataset_and_maybe_promote

    settings, engine, store = _registry()
    dataset = _dataset_to_train_on(args, settings, engine, store)
    try:
        report, model = train_formula_on_dataset_and_maybe_promote(
            engine, store, settings.reports_dir, dataset, seed=args.seed, n_estimators=args.estimators,
            margin=_margin(args, settings),
            allow_promotion=not args.no_promote, n_trials=args.trials)
    except ValueError as exc:
        raise UserFacingError(str(exc)) from None
    if args.export:
        _export_formula(args, report, model, f"the formulas of dataset {dataset.id} ({dataset.source})",
                        f"--source {args.source}")
    _print_formula_report(report)
    return 0


def _export_formula(args, report, model, what: str, source_options: str) -> None:
    """``_export`` of a formula model, with the command that rebuilds it (``source_options``: where its formulas
    came from)."""
    from tasks.pipeline import FORMULA_EVALUATION

    _export(args.export, report, model, args, modality="formula",
            dataset=f"{what} (one reduced formula in ten held out by a hash of it)", metrics_key=FORMULA_EVALUATION,
            command=f"spacegroup train --modality formula {source_options} --seed {args.seed} --trials {args.trials} "
                    f"--estimators {args.estimators} --export {args.export}")


def _print_formula_report(report) -> None:
    cm = report.candidate_metrics
    print(f"candidate formula model {report.candidate_id}: held-out formulas (n={cm['n']}): SG top-1 "
          f"{cm['sg_top1']:.3f}, top-5 {cm['sg_top5']:.3f}, crystal system {cm['crystal_system_accuracy']:.3f}")
    print(f"  promoted: {'yes' if report.promoted else 'no (did not beat the champion)'}")


def _export(path: Path, report, model, args, modality: str = "xrd", dataset: str | None = None,
            metrics_key: str = "frozen_synthetic", command: str | None = None) -> None:
    """Write the artifact and its metadata JSON, as shipped in tasks/pretrained/."""
    from storage.artifacts import sha256_bytes
    from tasks.synthetic import GeneratorConfig
    from tasks.training import synthetic_dataset_description

    structure_types = getattr(args, "structure_types", 0.0)  # formula exports have no such option
    data = model.to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    meta = {
        "name": path.stem, "modality": modality, "artifact": path.name, "sha256": sha256_bytes(data),
        "feature_version": model.feature_version,
        "parameters": {"model": model.get_params(), "search_trials": getattr(args, "trials", 0)},
        "metrics": {metrics_key: _headline(report.candidate_metrics)},
        "dataset": dataset or synthetic_dataset_description(
            args.crystals, args.augment, args.seed, GeneratorConfig(prototype_fraction=structure_types)),
        "command": command or f"spacegroup train --modality xrd --source synthetic --crystals {args.crystals} "
                              f"--augment {args.augment} --seed {args.seed} --trials {args.trials} "
                              f"--estimators {args.estimators}"
                              + (f" --structure-types {structure_types:g}" if structure_types else "")
                              + (" --lattice-evidence" if getattr(args, "lattice_evidence", False) else "")
                              + f" --export {path}",
    }
    if getattr(args, "trials", 0) > 0:
        # the Optuna-searched values, reused by later `--trials 0` runs (tasks.pipeline.default_parameters)
        meta["parameters"]["searched"] = {k: v for k, v in model.get_params().items() if k in SEARCHED_KEYS}
    if modality == "formula":
        meta["attribution"] = ("Trained on Materials Project data (CC-BY-4.0): A. Jain et al., APL Materials 1, "
                               "011002 (2013). No structures are shipped; the prototype search's references are the "
                               "training formulas' compositions (as places on Pettifor's map) and space groups.")
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


SEARCHED_KEYS = ("max_depth", "learning_rate", "colsample_bytree", "min_child_weight", "subsample")


def _headline(metrics: dict) -> dict:
    keys = ("n", "sg_top1", "sg_top3", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy", "ece")
    return {k: metrics[k] for k in keys if k in metrics}


def _print_training_report(report, settings) -> None:
    cm = report.candidate_metrics
    print(f"candidate model {report.candidate_id}: trained on {report.n_training_patterns} patterns of "
          f"{report.n_training_crystals} synthetic crystals")
    print(f"  frozen synthetic set (n={cm['n']}): SG top-1 {cm['sg_top1']:.3f}, top-5 {cm['sg_top5']:.3f}, "
          f"crystal system {cm['crystal_system_accuracy']:.3f}, extinction group "
          f"{cm['extinction_group_accuracy']:.3f}, ECE {cm['ece']:.3f}")
    if report.champion_metrics:
        ch = report.champion_metrics
        print(f"  champion {report.champion_id_before} on the same set: SG top-1 {ch['sg_top1']:.3f}, "
              f"crystal system {ch['crystal_system_accuracy']:.3f}")
    print(f"  promoted: {'yes' if report.promoted else 'no (did not beat the champion)'}")
    for name, path in report.plots.items():
        print(f"  {name}: {path}")


EXAMPLE_COMPOSITIONS = {"Si_diamond_CuKa.xy": "Si", "TiO2_rutile_CuKa.xy": "TiO2", "ZnO_wurtzite_CuKa.xy": "ZnO"}


def cmd_run(args) -> int:
    """The main job: synthetic crystals -> train -> evaluate -> champion -> predict the examples -> report."""
    from tasks.pipeline import train_and_maybe_promote

    _check_training_arguments(args)
    started = time.perf_counter()
    settings, engine, store = _registry()
    print(f"ml-space-group main job: home {settings.home}")
    update, bars = _progress_bar(args.crystals, args.crystals * args.augment)
    try:
        report, _ = train_and_maybe_promote(
            engine, store, settings.reports_dir, n_crystals=args.crystals, n_augment=args.augment, seed=args.seed,
            n_trials=args.trials, progress=update,
            margin=_margin(args, settings))
    except ValueError as exc:  # too few crystals to train on
        raise UserFacingError(str(exc)) from None
    finally:
        for bar in bars.values():
            bar.close()
    _print_training_report(report, settings)
    import tasks

    examples = Path(tasks.__file__).resolve().parent / "examples"
    print(f"\npredictions for the shipped examples ({examples}):")
    predictor = load_predictor(3)
    for result in predictor.predict_paths([examples]):
        print("  " + _human(result))
    print("\nthe example patterns with their samples' compositions (`spacegroup predict --composition`):")
    for name, composition in EXAMPLE_COMPOSITIONS.items():
        for result in predictor.predict_paths([examples / name], composition=composition):
            print("  " + _human(result))
    print(f"\nregistry:  {settings.registry_url}")
    print(f"artifacts: {settings.artifacts_url or settings.artifacts_dir}")
    print(f"plots:     {settings.reports_dir}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


#: the evaluations a model is registered with, in the order ``models list`` looks for one to show (formula models
#: registered before the frozen formula hold-out have "holdout_formulas")
HEADLINE_EVALUATIONS = ("frozen_synthetic", "frozen_holdout", "frozen_holdout_formulas", "holdout_formulas")


def _headline_top1(metrics: dict) -> str:
    """SG top-1 of the model's own evaluation: synthetic models on the frozen synthetic set, models trained on a
    dataset on its frozen hold-out, formula models on their held-out formulas."""
    for name in HEADLINE_EVALUATIONS:
        top1 = (metrics.get(name) or {}).get("sg_top1")
        if top1 is not None:
            return f"top1={top1:.3f} ({name})"
    return "top1=-"


def cmd_models(args) -> int:
    from storage.registry import RegistryError, get_model, list_models, promote, rollback
    from tasks.feature_versions import FEATURE_VERSIONS

    _, engine, store = _registry()
    from storage.bootstrap import bootstrap_pretrained

    bootstrap_pretrained(engine, store)
    try:
        if args.models_command == "list":
            for m in list_models(engine, args.modality):
                print(f"{m.id:4d}  {m.modality:7s}  {m.stage:9s}  {m.name:40s}  {_headline_top1(m.metrics)}  "
                      f"{m.created_at:%Y-%m-%d %H:%M}")
        elif args.models_command == "show":
            m = get_model(engine, args.model_id)
            print(json.dumps(m.model_dump(mode="json"), indent=2, default=str))
        elif args.models_command == "promote":
            m = promote(engine, args.model_id, FEATURE_VERSIONS)
            print(f"model {m.id} is now the {m.modality} champion")
        elif args.models_command == "rollback":
            m = rollback(engine, args.modality, FEATURE_VERSIONS)
            print(f"rolled back: model {m.id} is the {m.modality} champion again")
    except RegistryError as exc:
        raise UserFacingError(str(exc)) from None
    return 0


def cmd_symmetry(args) -> int:
    from tasks.readers import StructureError, read_structure
    from tasks.symmetry import SymmetryError, symmetry_labels, tolerance_sweep

    try:
        structure = read_structure(args.path)
        labels = symmetry_labels(structure)
    except (StructureError, SymmetryError) as exc:
        raise UserFacingError(str(exc)) from None
    print(json.dumps(labels.to_dict() | {"tolerance_sweep": tolerance_sweep(structure)}, indent=2))
    return 0


def cmd_db(args) -> int:
    settings, engine, _ = _registry()
    print(f"registry at {settings.registry_url} is at the newest schema")
    return 0
