"""The deployments and their schedules, as served by `spacegroup up` (prefect.yaml declares the same ones for
`prefect deploy --all` on a work pool; a test keeps the two in step)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    flow_name: str
    entrypoint: str  # file:function, as in prefect.yaml
    cron: str | None
    description: str


DEPLOYMENTS = (
    DeploymentSpec("refresh-weekly", "refresh", "flows/refresh.py:refresh_flow", "0 3 * * 1",
                   "Weekly data refresh (Mondays 03:00 UTC)"),
    DeploymentSpec("retrain-monthly", "retrain", "flows/retrain.py:retrain_flow", "0 4 1 * *",
                   "Monthly retraining (XRD and formula) with champion/challenger promotion (1st, 04:00 UTC)"),
    DeploymentSpec("drift-monthly", "drift", "flows/drift.py:drift_flow", "0 5 1 * *",
                   "Monthly drift check (1st, 05:00 UTC)"),
    DeploymentSpec("batch-predict", "batch-predict", "flows/batch_predict.py:batch_predict_flow", None,
                   "Batch predictions, triggered by the API and webhooks"),
)


def runner_deployments():
    """RunnerDeployments for ``prefect.serve`` (imports the flows only when serving)."""
    from flows.batch_predict import batch_predict_flow
    from flows.drift import drift_flow
    from flows.refresh import refresh_flow
    from flows.retrain import retrain_flow

    flows = {"refresh": refresh_flow, "retrain": retrain_flow, "drift": drift_flow, "batch-predict": batch_predict_flow}
    out = []
    for spec in DEPLOYMENTS:
        kwargs = {"cron": spec.cron} if spec.cron else {}
        out.append(flows[spec.flow_name].to_deployment(spec.name, description=spec.description,
                                                       tags=["spacegroup"], **kwargs))
    return out
