"""Weekly refresh: fetch what changed at the source, validate, label with spglib, upsert, snapshot a dataset
version, publish a report artifact, then check for drift when the data changed."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.common import registry
from tasks.refresh import refresh_markdown
from tasks.sources import LocalSource, MaterialsProjectSource, SourceError, SyntheticSource
from tasks.steps import refresh_source


def build_source(settings, source: str, path: str | None, n_synthetic: int | None, seed: int,
                 chunk_size: int = 500):
    """``auto`` means the Materials Project when an API key is configured, else the synthetic generator."""
    key = settings.mp_api_key.get_secret_value() if settings.mp_api_key else None
    if source == "auto" and settings.refresh_source != "auto":  # SPACEGROUP_REFRESH_SOURCE: a name or a path
        if settings.refresh_source in ("mp", "synthetic", "local"):
            source = settings.refresh_source
        else:
            source, path = "local", path or settings.refresh_source
    if source == "auto":
        source = "mp" if key else ("local" if path else "synthetic")
    if source == "mp":
        return MaterialsProjectSource(key or "", endpoint=settings.mp_endpoint, chunk_size=chunk_size)
    if source == "local":
        if not path:
            raise SourceError("a local refresh needs a path (a directory, .tar.gz/.zip, .json or .csv)")
        return LocalSource(Path(path), chunk_size=chunk_size)
    if source == "synthetic":
        return SyntheticSource(n_synthetic or settings.refresh_synthetic_crystals, seed=seed, n_jobs=settings.n_jobs,
                               chunk_size=chunk_size)
    raise SourceError(f"unknown source {source!r}; use auto, mp, local or synthetic")


@flow(name="refresh", log_prints=True)
def refresh_flow(source: str = "auto", path: str | None = None, n_synthetic: int | None = None, seed: int = 0,
                 check_drift: bool = True, chunk_size: int = 500) -> dict:
    logger = get_run_logger()
    settings, engine, store = registry()
    report = refresh_source(engine, store, build_source(settings, source, path, n_synthetic, seed, chunk_size),
                            settings.max_sites, settings.n_jobs)
    create_markdown_artifact(key="refresh-report", markdown=refresh_markdown(report),
                             description=f"refresh of {report.source}")
    logger.info("refresh of %s: %s", report.source, report.counts)
    result = {"source": report.source, "counts": report.counts, "dataset_version_id": report.dataset_version_id,
              "dataset_created": report.dataset_created, "n_materials": report.n_materials,
              "seconds": round(report.seconds, 2)}
    if report.dataset_created and check_drift:
        from flows.drift import drift_flow

        result["drift"] = drift_flow(dataset_id=report.dataset_version_id)
    return result


if __name__ == "__main__":
    refresh_flow()
