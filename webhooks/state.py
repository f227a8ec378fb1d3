"""What the API process holds: settings, registry, the champion predictor (reloaded when a champion changes),
the prediction recorder, and how background work is started."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from storage.artifacts import ArtifactStore
from storage.predictions import PredictionRecorder
from tasks.predict import Predictor
from tasks.serving import champion_ids, load_champion_predictor

log = logging.getLogger(__name__)
CHAMPION_CHECK_INTERVAL_S = 2.0


class ServiceState:
    def __init__(self, settings, engine, store: ArtifactStore, runner: str = "thread") -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.runner = runner  # thread: jobs run in this process | prefect: through the deployments
        self.started = time.time()
        self.recorder = PredictionRecorder(engine)
        self.background = ThreadPoolExecutor(max_workers=2, thread_name_prefix="spacegroup-job")
        self._lock = threading.Lock()
        self._predictor: Predictor | None = None
        self._champions: dict | None = None
        self._checked = 0.0
        self.training_runs: dict = {}
        from webhooks.batching import MicroBatcher

        self.batcher = MicroBatcher(lambda items: self.predictor().predict_inputs(items))

    def predictor(self) -> Predictor:
        """The champions' predictor; a promotion elsewhere is picked up within a couple of seconds."""
        now = time.monotonic()
        if self._predictor is not None and now - self._checked < CHAMPION_CHECK_INTERVAL_S:
            return self._predictor
        with self._lock:
            if self._predictor is None or now - self._checked >= CHAMPION_CHECK_INTERVAL_S:
                current = champion_ids(self.engine)
                if self._predictor is None or current != self._champions:
                    s = self.settings
                    self._predictor = load_champion_predictor(self.engine, self.store, 20, s.max_sites,
                                                              s.max_pattern_points, model_threads=1,
                                                              small_batches=True, prior=s.space_group_prior)
                    self._champions = champion_ids(self.engine)
                    log.info("serving champions %s", self._champions)
                self._checked = now
        return self._predictor

    def warm_up(self) -> None:
        """One prediction of each kind, so the first client does not pay for loading featurizers."""
        import numpy as np

        from tasks.inputs import parse_prediction_input

        predictor = self.predictor()
        two_theta = np.linspace(10, 80, 3500)
        peaks = np.array([28.44, 47.30, 56.12, 69.13, 76.38])  # silicon, CuKα: enough peaks to run the indexing
        intensity = 1 + (100 * np.exp(-(((two_theta[:, None] - peaks) / 0.05) ** 2))).sum(axis=1)
        pattern = {"xrd": {"two_theta_deg": two_theta.tolist(), "intensity": intensity.tolist()}}
        items = [parse_prediction_input(pattern)]
        if predictor.formula is not None:
            items.append(parse_prediction_input({"formula": "NaCl"}))
        if predictor.xrd is not None:
            predictor.predict_inputs(items)
        elif predictor.formula is not None:
            predictor.predict_inputs(items[1:])

    def champions(self) -> dict:
        self.predictor()
        return dict(self._champions or {})

    # -- background work ----------------------------------------------------------------------------------
    def start_job(self, job_id: int) -> str:
        """Start answering a batch job; returns how (a Prefect flow run id, or 'thread')."""
        if self.runner == "prefect":
            run_id = _run_deployment("batch-predict/batch-predict", {"job_id": job_id}, f"batch job {job_id}")
            if run_id is not None:
                return f"prefect flow run {run_id}"
        self.background.submit(self._run_job, job_id)
        return "thread"

    def _run_job(self, job_id: int) -> None:
        from tasks.batch import deliver_callback, run_job

        s = self.settings
        try:
            run_job(self.engine, self.store, job_id, load_champion_predictor(
                self.engine, self.store, 5, s.max_sites, s.max_pattern_points, bootstrap=False,
                prior=s.space_group_prior), s)
        except Exception:
            log.exception("batch job %s failed", job_id)
        secret = s.webhook_secret.get_secret_value() if s.webhook_secret else None
        deliver_callback(self.engine, job_id, secret, s.allowed_callback_hosts)

    def start_training(self, parameters: dict) -> str:
        if self.runner == "prefect":
            run_id = _run_deployment("retrain/retrain-monthly", parameters, "a retrain")
            if run_id is not None:
                return run_id
        from tasks.pipeline import retrain_models_once

        # what the retrain flow runs (XRD, then formula), without an orchestrator, in this process
        future = self.background.submit(retrain_models_once, self.engine, self.store, self.settings, **parameters)
        name = f"thread-{id(future):x}"
        self.training_runs[name] = future
        return name


def _run_deployment(name: str, parameters: dict, what: str) -> str | None:
    """Start a run of a Prefect deployment without waiting; None (logged) when Prefect cannot take it: the
    deployment is not registered yet (``spacegroup up`` registers it a moment after the API answers), or the Prefect
    API does not answer. The caller then does the work in this process, so an accepted job is never left unstarted."""
    import httpx
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        return str(run_deployment(name, parameters=parameters, timeout=0).id)
    except (ObjectNotFound, PrefectHTTPStatusError, httpx.HTTPError, OSError) as exc:
        detail = "it is not registered" if isinstance(exc, ObjectNotFound) else f"{type(exc).__name__}: {exc}"
        log.warning("the Prefect deployment %s cannot take %s (%s); running it in the API process", name, what,
                    detail)
        return None
