"""Pretrained models shipped with the package (no training data files), with their recorded sha256 and
provenance. A model with a structure-type search carries its references (the formula model: its training formulas'
places on Pettifor's map and their space groups).

Each model is a pair ``<name>.npz`` (the artifact) + ``<name>.json`` (metadata: modality, sha256, feature
version, parameters, metrics, and the command that reproduces it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources

from storage.artifacts import ArtifactIntegrityError, sha256_bytes


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    modality: str
    artifact: bytes
    metadata: dict


def shipped_models() -> list[PretrainedModel]:
    """The shipped models whose files are present, each verified against its recorded sha256."""
    out = []
    root = resources.files(__name__)
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        meta = json.loads(entry.read_text())
        artifact_entry = root.joinpath(meta["artifact"])
        if not artifact_entry.is_file():
            continue
        data = artifact_entry.read_bytes()
        if sha256_bytes(data) != meta["sha256"]:
            raise ArtifactIntegrityError(f"shipped model {meta['artifact']} does not match its recorded sha256")
        out.append(PretrainedModel(meta["name"], meta["modality"], data, meta))
    return out
