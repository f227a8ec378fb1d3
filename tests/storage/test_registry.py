"""Registry behaviour on SQLite and PostgreSQL: lineage, atomic promotion, rollback, integrity of artifacts."""

import threading

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from storage.artifacts import ArtifactIntegrityError
from storage.registry import (IncompatibleModelError, RegistryError, champion, get_model, list_models,
                              load_artifact_bytes, promote, record_evaluation, register_model, rollback,
                              should_promote)
from storage.tables import DatasetVersion, EvaluationRun, Material, ModelVersion


def _register(engine, store, payload: bytes, name: str, modality: str = "xrd"):
    return register_model(engine, store, payload, name=name, modality=modality, feature_version="xrd-test",
                          parameters={"depth": 3}, metrics={"sg_top1": 0.5})


def test_postgres_is_really_used(engine):
    query = "select version()" if engine.dialect.name == "postgresql" else "select sqlite_version()"
    with engine.connect() as conn:
        version = conn.execute(text(query)).scalar()
        tables = {row[0] for row in conn.execute(text(
            "select table_name from information_schema.tables where table_schema = 'public'"
            if engine.dialect.name == "postgresql" else "select name from sqlite_master where type = 'table'"))}
    assert {"material", "modelversion", "datasetversion", "prediction", "apikey", "alembic_version"} <= tables
    if engine.dialect.name == "postgresql":
        assert "PostgreSQL" in version
    else:
        assert version.count(".") == 2


def test_register_promote_and_roll_back(engine, store):
    a = _register(engine, store, b"model-a", "a")
    b = _register(engine, store, b"model-b", "b")
    assert a.stage == b.stage == "candidate"
    assert champion(engine, "xrd") is None
    promote(engine, a.id)
    assert champion(engine, "xrd").id == a.id
    promote(engine, b.id)
    assert champion(engine, "xrd").id == b.id
    assert get_model(engine, a.id).stage == "archived"
    assert get_model(engine, b.id).previous_champion_id == a.id
    rolled = rollback(engine, "xrd")
    assert rolled.id == a.id and champion(engine, "xrd").id == a.id
    assert get_model(engine, b.id).stage == "archived"
    assert [m.id for m in list_models(engine, "xrd")] == [a.id, b.id]


def test_modalities_have_separate_champions(engine, store):
    x = _register(engine, store, b"x", "x", "xrd")
    f = _register(engine, store, b"f", "f", "formula")
    promote(engine, x.id)
    promote(engine, f.id)
    assert champion(engine, "xrd").id == x.id and champion(engine, "formula").id == f.id


def test_concurrent_promotions_leave_exactly_one_champion(engine, store):
    ids = [_register(engine, store, f"m{i}".encode(), f"m{i}").id for i in range(6)]
    errors = []

    def go(model_id):
        try:
            promote(engine, model_id)
        except Exception as exc:  # SQLite may report "database is locked" under contention
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with Session(engine) as session:
        champions = session.exec(select(ModelVersion).where(ModelVersion.stage == "champion")).all()
    assert len(champions) == 1
    assert len(errors) < len(ids)


def test_unknown_model_and_bad_modality_are_named(engine, store):
    with pytest.raises(RegistryError, match="no model version with id 999"):
        promote(engine, 999)
    with pytest.raises(RegistryError, match="no xrd champion"):
        rollback(engine, "xrd")
    with pytest.raises(RegistryError, match="modality"):
        register_model(engine, store, b"x", name="x", modality="raman", feature_version="v", parameters={}, metrics={})


def test_tampered_or_missing_artifact_is_refused(engine, store):
    version = _register(engine, store, b"original weights", "t")
    assert load_artifact_bytes(store, version) == b"original weights"
    path = store.path_of(version.artifact_uri)
    path.write_bytes(b"evil weights")
    with pytest.raises(ArtifactIntegrityError, match="modified"):
        load_artifact_bytes(store, version)
    path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_artifact_bytes(store, version)


def test_artifact_uri_cannot_escape_the_store(store):
    with pytest.raises(ArtifactIntegrityError, match="outside"):
        store.path_of("artifact://../../etc/passwd")


def test_evaluations_and_lineage_are_recorded(engine, store):
    with Session(engine) as session:
        ds = DatasetVersion(content_hash="abc", source="synthetic", n_materials=3, label_distribution={"225": 3})
        session.add(ds)
        session.commit()
        session.refresh(ds)
    version = register_model(engine, store, b"w", name="w", modality="xrd", feature_version="v", parameters={},
                             metrics={}, dataset_version_id=ds.id)
    record_evaluation(engine, version.id, "frozen_synthetic", {"sg_top1": 0.7})
    with Session(engine) as session:
        runs = session.exec(select(EvaluationRun).where(EvaluationRun.model_version_id == version.id)).all()
    assert runs[0].metrics["sg_top1"] == 0.7
    assert get_model(engine, version.id).dataset_version_id == ds.id


def test_material_source_ids_are_unique(engine):
    row = dict(source="mp", source_id="mp-1", formula="Cs1", reduced_formula="Cs", structure_json="{}",
               space_group_number=229, crystal_system="cubic", extinction_group=88, content_hash="h")
    with Session(engine) as session:
        session.add(Material(**row))
        session.commit()
    with pytest.raises(Exception):
        with Session(engine) as session:
            session.add(Material(**row))
            session.commit()
    with Session(engine) as session:
        assert len(session.exec(select(Material)).all()) == 1  # nothing already stored was lost


@pytest.mark.parametrize("cand,champ,margin,expected", [
    ({"sg_top1": 0.6}, None, 0.0, True),
    ({"sg_top1": 0.6}, {"sg_top1": 0.5}, 0.05, True),
    ({"sg_top1": 0.52}, {"sg_top1": 0.5}, 0.05, False),
    ({"sg_top1": 0.5}, {"sg_top1": 0.5}, 0.0, False),  # a tie keeps the champion
    ({"sg_top1": 0.501}, {"sg_top1": 0.5}, 0.0, True),
    ({}, {"sg_top1": 0.5}, 0.0, False),
])
def test_promotion_rule(cand, champ, margin, expected):
    assert should_promote(cand, champ, "sg_top1", margin) is expected


def test_models_of_another_feature_version_are_not_made_champion_by_hand(engine, store):
    versions = {"xrd": "xrd-test"}
    old = register_model(engine, store, b"old", name="old", modality="xrd", feature_version="xrd-older",
                         parameters={}, metrics={})
    new = _register(engine, store, b"new", "new")
    with pytest.raises(IncompatibleModelError, match="'xrd-older' but this code makes 'xrd-test'"):
        promote(engine, old.id, versions)
    assert champion(engine, "xrd") is None
    promote(engine, old.id)  # the registry itself knows no feature versions
    promote(engine, new.id, versions)
    with pytest.raises(IncompatibleModelError, match="cannot answer"):
        rollback(engine, "xrd", versions)
    assert champion(engine, "xrd").id == new.id and get_model(engine, old.id).stage == "archived"


def test_an_upgrade_that_changes_the_features_brings_in_the_shipped_model(engine, store):
    from storage.bootstrap import bootstrap_pretrained
    from tasks.feature_versions import FEATURE_VERSIONS

    bootstrap_pretrained(engine, store)
    shipped = champion(engine, "xrd")
    assert shipped.feature_version == FEATURE_VERSIONS["xrd"]
    outdated = register_model(engine, store, b"trained before the upgrade", name="local", modality="xrd",
                              feature_version="xrd-older", parameters={}, metrics={})
    promote(engine, outdated.id)
    assert bootstrap_pretrained(engine, store) == [shipped.id]  # the registered shipped model, promoted again
    assert champion(engine, "xrd").id == shipped.id
    assert get_model(engine, outdated.id).stage == "archived"
    assert champion(engine, "formula").feature_version == FEATURE_VERSIONS["formula"]
    assert bootstrap_pretrained(engine, store) == []  # a usable champion is left alone
