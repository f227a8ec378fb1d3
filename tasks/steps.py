"""Thin Prefect ``@task`` wrappers over the plain functions, for the flows in ``flows/`` to compose.

Nothing here does work of its own. Caching is off: the inputs are engines and stores, and the functions
keep their own content-addressed caches.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.pipeline import retrain_formula_once, retrain_once
from tasks.batch import create_job, deliver_callback, run_job
from tasks.refresh import refresh_from_source

refresh_source = task(refresh_from_source, name="fetch-validate-upsert-snapshot", cache_policy=NO_CACHE)
retrain = task(retrain_once, name="train-evaluate-promote", cache_policy=NO_CACHE)
retrain_formula = task(retrain_formula_once, name="train-evaluate-promote-formula", cache_policy=NO_CACHE)
submit_batch = task(create_job, name="create-batch-job", cache_policy=NO_CACHE)
answer_batch = task(run_job, name="answer-batch-items", cache_policy=NO_CACHE)
send_job_callback = task(deliver_callback, name="send-signed-callback", cache_policy=NO_CACHE, retries=0)
