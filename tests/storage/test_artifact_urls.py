"""Artifact stores behind fsspec URLs (object storage): same content addressing, same integrity checks."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import fsspec
import pytest

from storage.artifacts import ArtifactIntegrityError, ArtifactStore, sha256_bytes
from storage.engine import make_engine, migrate
from storage.registry import load_artifact_bytes, register_model


@pytest.fixture()
def memory_store():
    url = f"memory://spacegroup-test-{uuid.uuid4().hex[:8]}/artifacts"
    yield ArtifactStore(url)
    fs, root = fsspec.filesystem("memory"), url.removeprefix("memory://").split("/")[0]
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_round_trip_and_content_addressing(memory_store):
    uri, digest = memory_store.put_bytes(b"weights", ".npz")
    assert uri == f"artifact://{digest[:2]}/{digest}.npz" and digest == sha256_bytes(b"weights")
    assert memory_store.put_bytes(b"weights", ".npz") == (uri, digest)  # idempotent
    assert memory_store.read_verified(uri, digest) == b"weights"
    assert memory_store.read_verified(uri) == b"weights"  # the digest in the name is enough


def test_tampered_or_missing_remote_artifact_is_refused(memory_store, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite'}")
    migrate(engine)
    version = register_model(engine, memory_store, b"original", name="m", modality="xrd", feature_version="v",
                             parameters={}, metrics={})
    assert load_artifact_bytes(memory_store, version) == b"original"
    fs = fsspec.filesystem("memory")
    remote = f"{memory_store.url}/{version.artifact_uri.removeprefix('artifact://')}"
    fs.pipe_file(remote, b"evil")
    with pytest.raises(ArtifactIntegrityError, match="modified"):
        load_artifact_bytes(memory_store, version)
    fs.rm(remote)
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        load_artifact_bytes(memory_store, version)
    with pytest.raises(ArtifactIntegrityError, match="outside"):
        memory_store.read_verified("artifact://../../x", "0" * 64)
    with pytest.raises(ArtifactIntegrityError, match="not a local directory"):
        memory_store.path_of(version.artifact_uri)


@pytest.mark.slow
def test_cli_predicts_with_models_in_an_fsspec_store(tmp_path):
    """A fresh registry bootstraps the shipped models into an fsspec store and `spacegroup predict` loads them
    back from it, in separate processes (``local://`` goes through fsspec, not the local-directory code)."""
    import os

    env = dict(os.environ, SPACEGROUP_HOME=str(tmp_path / "home"),
               SPACEGROUP_ARTIFACTS_URL=f"local://{tmp_path / 'bucket'}")
    run = subprocess.run([sys.executable, "-m", "deployments.cli", "predict", "--formula", "NaCl", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    assert answer["modality"] == "formula" and answer["space_group"]["number"] >= 1
    stored = list((tmp_path / "bucket").rglob("*.npz"))
    assert len(stored) == 2  # both shipped models, addressed by content
    assert not (tmp_path / "home" / "artifacts").exists() or not any((tmp_path / "home" / "artifacts").rglob("*.npz"))


def test_unknown_store_url_is_a_clear_cli_error(tmp_path):
    import os

    env = dict(os.environ, SPACEGROUP_HOME=str(tmp_path / "home"), SPACEGROUP_ARTIFACTS_URL="nosuchscheme://bucket/x")
    run = subprocess.run([sys.executable, "-m", "deployments.cli", "predict", "--formula", "NaCl"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 1
    assert "cannot open the artifact store nosuchscheme://bucket/x" in run.stderr and "Traceback" not in run.stderr
