"""gunicorn settings for the API in production: `gunicorn -c deployments/gunicorn.conf.py 'webhooks.wsgi:app'`.

Prediction is CPU-bound numpy/XGBoost work, so one worker process per core; many threads per worker let
concurrent requests meet in the micro-batcher (webhooks/batching.py) and share one model call. The workers are
gthread workers that let the least-loaded one accept new connections (deployments/balanced_worker.py). The model is
loaded once per worker (preload would share it, but XGBoost boosters are not fork-safe).
"""

import multiprocessing
import os

bind = os.environ.get("SPACEGROUP_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("SPACEGROUP_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("SPACEGROUP_THREADS", 16))  # concurrent requests per worker share one model call
worker_class = "deployments.balanced_worker.BalancedThreadWorker"  # gthread, balanced accepts
timeout = 120
graceful_timeout = 30
keepalive = 5
max_requests = 20_000  # recycle workers now and then: bounded memory over weeks of uptime
max_requests_jitter = 2_000
accesslog = os.environ.get("SPACEGROUP_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("SPACEGROUP_LOG_LEVEL", "info").lower()


def post_worker_init(worker):
    from deployments.serving import freeze_start_up_objects, one_blas_thread

    one_blas_thread()
    freeze_start_up_objects()
