"""Materials, dataset versions, batch jobs, webhook deliveries and API keys on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlmodel import Session, SQLModel

from storage.keys import create_api_key, find_api_key, revoke_api_key
from storage.materials import delete_upload, snapshot_dataset, upsert_chunk
from storage.tables import Material, Prediction
from tasks.batch import create_job, get_job, run_job
from tasks.ingest import validate_chunk
from tasks.sources import SourceRecord


def test_migrations_match_the_table_definitions(engine):
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), SQLModel.metadata) == []


def _records(source="test"):
    from pymatgen.core import Lattice, Structure

    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]])
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    return [SourceRecord(source, "a", structure=nacl.as_dict(), source_space_group=225),
            SourceRecord(source, "b", structure=si.as_dict(), source_space_group=227),
            SourceRecord(source, "a", structure=nacl.as_dict(), source_space_group=225),  # delivered twice
            SourceRecord(source, "c", structure={"bad": 1})]


def test_upsert_is_idempotent_and_snapshots_only_on_change(engine, store):
    valid, rejected = validate_chunk(_records())
    first = upsert_chunk(engine, valid, rejected)
    assert (first.added, first.duplicates_in_batch, first.quarantined) == (2, 1, 1)
    again = upsert_chunk(engine, *validate_chunk(_records()))
    assert (again.added, again.updated, again.unchanged, again.quarantined) == (0, 0, 2, 0)
    one = snapshot_dataset(engine, store, "test")
    two = snapshot_dataset(engine, store, "test")
    assert one.created and not two.created and one.version.id == two.version.id
    assert one.version.label_distribution == {"225": 1, "227": 1}


def test_upload_deletion_refuses_other_sources(engine, store):
    upsert_chunk(engine, *validate_chunk(_records("upload:x")))
    upload = snapshot_dataset(engine, store, "upload:x").version
    upsert_chunk(engine, *validate_chunk(_records("mp")))
    kept = snapshot_dataset(engine, store, "mp").version
    with pytest.raises(PermissionError):
        delete_upload(engine, kept.id)
    delete_upload(engine, upload.id)
    with Session(engine) as session:
        sources = set(session.execute(select(Material.source)).scalars())
    assert sources == {"mp"}


def test_concurrent_deliveries_make_one_job(engine, store):
    results = []

    def submit():
        results.append(create_job(engine, store, [{"formula": "NaCl"}], delivery_id="same-delivery")[0].id)

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1


def test_a_job_runs_once_per_item(engine, store, monkeypatch, tmp_path):
    from tasks.serving import load_champion_predictor
    from tasks.settings import Settings

    settings = Settings(home=tmp_path / "home")
    job, created = create_job(engine, store, [{"formula": "NaCl"}, {"formula": "Qx"}])
    predictor = load_champion_predictor(engine, store)
    done = run_job(engine, store, job.id, predictor, settings)
    assert created and (done.status, done.n_done, done.n_failed) == ("done", 1, 1)
    # reopen and run again: nothing is answered twice
    from storage.engine import session_scope
    from storage.tables import BatchJob

    with session_scope(engine) as session:
        session.get(BatchJob, job.id).status = "running"
    run_job(engine, store, job.id, predictor, settings)
    with Session(engine) as session:
        assert session.execute(select(func.count()).select_from(Prediction)).scalar_one() == 2
    assert get_job(engine, job.id).status == "done"


def test_api_keys_are_stored_hashed_and_revocable(engine):
    row, key = create_api_key(engine, "admin", "ops")
    assert key.startswith("sgk_") and key not in row.key_hash and len(key) > 40
    assert find_api_key(engine, key).role == "admin"
    assert find_api_key(engine, key + "x") is None
    revoke_api_key(engine, row.id)
    assert find_api_key(engine, key) is None
    with pytest.raises(ValueError, match="role"):
        create_api_key(engine, "root")
