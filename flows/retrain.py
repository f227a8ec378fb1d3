"""Monthly retraining: an XRD challenger on the newest dataset version (or synthetic crystals when there is none)
and a formula challenger on the same dataset's formulas, each judged against its champion on frozen evaluation
data and promoted only if better."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import registry
from tasks.steps import retrain, retrain_formula

HEADLINE = ("sg_top1", "sg_top5", "crystal_system_accuracy", "extinction_group_accuracy", "ece", "n")


def metrics_markdown(report, title: str) -> str:
    lines = [f"# {title}", "", f"Candidate model **{report.candidate_id}**: "
             f"{'promoted to champion' if report.promoted else 'not promoted'} "
             f"(champion before: {report.champion_id_before}).", "",
             "| metric | candidate | champion |", "|---|---:|---:|"]
    for name in HEADLINE:
        cand = report.candidate_metrics.get(name)
        champ = (report.champion_metrics or {}).get(name)
        lines.append(f"| {name} | {_fmt(cand)} | {_fmt(champ)} |")
    if report.plots:
        lines += ["", "Plots (PNG):", ""] + [f"- {name}: `{path}`" for name, path in report.plots.items()]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


@flow(name="retrain", log_prints=True)
def retrain_flow(dataset_id: int | None = None, n_augment: int = 2, n_estimators: int = 400,
                 synthetic_crystals: int = 600, seed: int = 0, allow_promotion: bool = True,
                 formula: bool = True) -> dict:
    logger = get_run_logger()
    settings, engine, store = registry()
    report, title, used = retrain(engine, store, settings, dataset_id, n_augment, n_estimators, synthetic_crystals,
                                  seed, allow_promotion)
    create_markdown_artifact(key="retrain-report", markdown=metrics_markdown(report, title), description=title)
    if report.plots.get("confusion_png"):
        create_markdown_artifact(key="retrain-confusion", description="confusion matrix of the candidate",
                                 markdown=f"![confusion matrix](file://{report.plots['confusion_png']})\n")
    logger.info("%s: candidate %s %s", title, report.candidate_id, "promoted" if report.promoted else "kept")
    result = _summary(report) | {"dataset_version_id": used}
    if formula:  # formula models learn from real materials only: the XRD challenger's dataset, when it had one
        formula_report, formula_title = retrain_formula(engine, store, settings, used, n_estimators, seed,
                                                        allow_promotion)
        if formula_report is not None:
            create_markdown_artifact(key="retrain-formula-report", description=formula_title,
                                     markdown=metrics_markdown(formula_report, formula_title))
        logger.info("%s", formula_title if formula_report is None else
                    f"{formula_title}: candidate {formula_report.candidate_id} "
                    f"{'promoted' if formula_report.promoted else 'kept'}")
        result["formula"] = None if formula_report is None else _summary(formula_report)
    return result


def _summary(report) -> dict:
    return {"candidate_id": report.candidate_id, "promoted": report.promoted,
            "champion_before": report.champion_id_before,
            "candidate_sg_top1": report.candidate_metrics.get("sg_top1"),
            "champion_sg_top1": (report.champion_metrics or {}).get("sg_top1")}


if __name__ == "__main__":
    retrain_flow()
