"""Batch predictions: items (or a manifest of files) -> one stored prediction per item with the model version,
progress in the registry, a signed callback when done. Triggered by the API, a webhook or by hand."""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.common import registry
from tasks.batch import items_from_manifest, job_summary
from tasks.serving import load_champion_predictor
from tasks.steps import answer_batch, send_job_callback, submit_batch


@flow(name="batch-predict", log_prints=True)
def batch_predict_flow(job_id: int | None = None, items: list | None = None, manifest: str | None = None,
                       callback_url: str | None = None, top_k: int = 5) -> dict:
    logger = get_run_logger()
    settings, engine, store = registry()
    if job_id is None:
        if manifest:
            items = items_from_manifest(manifest, settings.default_wavelength)
        job, _ = submit_batch(engine, store, items or [], callback_url=callback_url, top_k=top_k,
                              max_items=settings.api_max_batch_items)
        job_id = job.id
    predictor = load_champion_predictor(engine, store, top_k, settings.max_sites, settings.max_pattern_points,
                                        prior=settings.space_group_prior)
    job = answer_batch(engine, store, job_id, predictor, settings)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    status = send_job_callback(engine, job_id, secret, settings.allowed_callback_hosts)
    logger.info("batch job %s: %d answered, %d failed, callback %s", job_id, job.n_done, job.n_failed, status)
    from tasks.batch import get_job

    return job_summary(get_job(engine, job_id))


if __name__ == "__main__":
    batch_predict_flow()
