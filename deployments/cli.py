"""The ``spacegroup`` command line: a thin translation of arguments into calls to ``tasks/`` and ``storage/``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tasks import __version__
from tasks.priors import PRIORS

log = logging.getLogger("spacegroup")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default: SPACEGROUP_LOG_LEVEL or INFO)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spacegroup",
        description="Space group, crystal system and extinction group from powder XRD patterns, formulas and structures.",
    )
    parser.add_argument("--version", action="version", version=f"ml-space-group {__version__}")
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run the whole pipeline once on the embedded default (offline, no API key)")
    run.add_argument("--crystals", type=int, default=600, help="synthetic training crystals (default 600)")
    run.add_argument("--augment", type=int, default=4, help="measured-like patterns per crystal (default 4)")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--trials", type=int, default=0, help="Optuna trials (0 = reuse the champion's searched parameters)")
    run.add_argument("--margin", type=float, default=None,
                     help="SG top-1 gain on the frozen set needed to promote (default SPACEGROUP_PROMOTION_MARGIN)")
    _add_common(run)

    predict = sub.add_parser("predict", help="predict space groups for pattern files, structures, directories, formulas")
    predict.add_argument("paths", nargs="*", help="pattern files (.xy .xye .csv .txt .dat .asc .xrdml .ras .uxd .brml "
                         ".gsa .gss .gsas .fxye .raw), CIF/POSCAR, or directories")
    predict.add_argument("--formula", action="append", default=[], help="a chemical formula (repeatable)")
    predict.add_argument("--formulas", type=Path, help="a file with one formula per line")
    predict.add_argument("--wavelength", default=None,
                         help="CuKa, CuKa1, MoKa, CoKa, FeKa, CrKa, AgKa ..., a value in Å, or a photon energy "
                              "such as 30keV (default: file header, else CuKa)")
    predict.add_argument("--exclude-two-theta", action="append", default=[], metavar="START-END",
                         help="a 2θ region (degrees) to take out of every pattern first, such as a substrate's or "
                              "sample holder's line: 26.3-26.9 (repeatable, or comma-separated)")
    predict.add_argument("--substrate", action="append", default=[], metavar="NAME",
                         help="take out the lines each pattern shows of a substrate or holder: "
                              "FTO, ITO, Si, Au, Pt or Al (repeatable)")
    predict.add_argument("--composition", default=None, metavar="FORMULA",
                         help="the samples' composition (e.g. Fe2O3): each pattern is answered by the XRD and the "
                              "formula model together")
    predict.add_argument("--compositions", type=Path, default=None, metavar="FILE",
                         help="each pattern's composition: a table of two columns, pattern file and formula "
                              "(files it does not list are answered from the pattern alone)")
    predict.add_argument("--top-k", type=int, default=5)
    predict.add_argument("--cell", action="store_true",
                         help="also index each pattern: a cell of its answer's lattice (any but triclinic) refined "
                              "with a zero shift, and de Wolff's M20 (a few ms per pattern; ~0.4 s for orthorhombic "
                              "answers, ~1-9 s for monoclinic ones)")
    predict.add_argument("--lattice-evidence", action="store_true",
                         help="index each pattern in the primitive cubic, tetragonal, hexagonal and orthorhombic "
                              "lattices (and orthorhombic cells thinned by a C centring or Pnma's rules) and let the "
                              "cells correct the crystal system (models trained with --lattice-evidence; ~0.6 s per "
                              "pattern)")
    predict.add_argument("--json", action="store_true", help="JSON Lines, one object per input")
    predict.add_argument("--prior", choices=PRIORS, default=None,
                         help="space-group prior of the answers: mp (how often each space group occurs among Materials "
                              "Project materials) or training (as the model learnt it); default SPACEGROUP_SPACE_GROUP_PRIOR, "
                              "else mp")
    _add_common(predict)

    train = sub.add_parser("train", help="train a model and register it as a candidate (promoted only if better)")
    train.add_argument("--modality", choices=["xrd", "formula"], default="xrd")
    train.add_argument("--source", choices=["synthetic", "local", "mp", "dataset"], default="synthetic",
                       help="synthetic: PyXtal crystals from MP Wyckoff statistics (xrd); local: a CSV of formulas "
                            "and space groups (formula); mp: refresh from the Materials Project (MP_API_KEY), then "
                            "train on that dataset's patterns (xrd) or formulas (formula); dataset: a registry "
                            "dataset version (--dataset-id, else the newest)")
    train.add_argument("--dataset-id", type=int, default=None, help="dataset version for --source dataset")
    train.add_argument("--path", type=Path, help="the CSV for --source local")
    train.add_argument("--formula-column", default="formula")
    train.add_argument("--label-column", default="space_group")
    train.add_argument("--crystals", type=int, default=2000)
    train.add_argument("--structure-types", type=float, default=0.0, metavar="SHARE",
                       help="share (0-1) of the synthetic crystals built from known structure types instead of placed "
                            "at random; above 0 the model also searches its training patterns by structure type "
                            "(BENCHMARKS.md: better on real patterns, a third of the batch throughput)")
    train.add_argument("--augment", type=int, default=4)
    train.add_argument("--seed", type=int, default=1)
    train.add_argument("--trials", type=int, default=0)
    train.add_argument("--estimators", type=int, default=400)
    train.add_argument("--margin", type=float, default=None,
                       help="SG top-1 gain on the frozen set needed to promote (default SPACEGROUP_PROMOTION_MARGIN)")
    train.add_argument("--lattice-evidence", action="store_true",
                       help="XRD: also learn how the patterns' indexed cells correct the crystal system, for "
                            "`spacegroup predict --lattice-evidence` (training indexes the calibration patterns: "
                            "~0.6 s each); --source mp|dataset models learn it anyway when they have 450 or more "
                            "calibration patterns")
    train.add_argument("--no-promote", action="store_true", help="register only; never promote")
    train.add_argument("--export", type=Path, help="also write the artifact and its metadata JSON here (a .npz path)")
    _add_common(train)

    models = sub.add_parser("models", help="list, show, promote or roll back model versions")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    mlist = msub.add_parser("list", help="all model versions")
    mlist.add_argument("--modality", choices=["xrd", "formula"])
    mshow = msub.add_parser("show", help="one model version with its metrics")
    mshow.add_argument("model_id", type=int)
    mprom = msub.add_parser("promote", help="make a model version the champion of its modality")
    mprom.add_argument("model_id", type=int)
    mroll = msub.add_parser("rollback", help="re-promote the previous champion")
    mroll.add_argument("--modality", choices=["xrd", "formula"], default="xrd")
    for p in (mlist, mshow, mprom, mroll):
        _add_common(p)

    symmetry = sub.add_parser("symmetry", help="exact symmetry of a structure file (spglib), with a tolerance sweep")
    symmetry.add_argument("path", type=Path)
    _add_common(symmetry)

    refresh = sub.add_parser("refresh", help="refresh the registry from a source once (what the weekly flow does)")
    refresh.add_argument("--source", choices=["auto", "mp", "local", "synthetic"], default="auto",
                         help="auto: the Materials Project with MP_API_KEY, else synthetic")
    refresh.add_argument("--path", help="directory, .tar.gz/.zip of CIF/POSCAR, or MP-style .json/.csv (local)")
    refresh.add_argument("--crystals", type=int, default=None, help="crystals for --source synthetic")
    refresh.add_argument("--seed", type=int, default=0)
    _add_common(refresh)

    serve = sub.add_parser("serve", help="start the HTTP API alone (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    serve.add_argument("--dev", action="store_true", help="Werkzeug's threaded server instead of gunicorn")
    _add_common(serve)

    up = sub.add_parser("up", help="registry + Prefect server + scheduled deployments + API; Ctrl-C stops all")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=5000, help="API port")
    up.add_argument("--prefect-port", type=int, default=4200, help="Prefect server/UI port (unless PREFECT_API_URL)")
    _add_common(up)

    keys = sub.add_parser("keys", help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    kcreate = ksub.add_parser("create", help="create a key; printed once on the last line, stored hashed")
    kcreate.add_argument("--role", choices=["user", "admin"], required=True)
    kcreate.add_argument("--label", default=None)
    krevoke = ksub.add_parser("revoke", help="revoke a key by id")
    krevoke.add_argument("key_id", type=int)
    for p in (kcreate, krevoke):
        _add_common(p)

    db = sub.add_parser("db", help="registry maintenance")
    db.add_argument("action", choices=["upgrade"], help="upgrade: apply migrations (creates the registry if new)")
    _add_common(db)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from deployments.logging_config import configure_logging
    from tasks.settings import get_settings

    try:
        settings = get_settings()
    except Exception as exc:  # pydantic's ValidationError: tell which variable is wrong
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or settings.log_level)
    if args.command is None:
        parser.print_help()
        return 0
    from deployments import commands
    from storage.artifacts import ArtifactIntegrityError, ArtifactStoreError

    handler = getattr(commands, f"cmd_{args.command}")
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `spacegroup predict ... | head`
        return 0
    except commands.UserFacingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ArtifactIntegrityError, ArtifactStoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
