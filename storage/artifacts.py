"""Content-addressed artifact store: files named by their sha256, checked on every load.

Only safe formats are stored (XGBoost UBJ inside numpy ``.npz`` loaded with ``allow_pickle=False``, JSON,
PNG); nothing is ever unpickled. URIs look like ``artifact://ab/abcdef....npz`` and resolve under the root.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

SCHEME = "artifact://"


class ArtifactIntegrityError(RuntimeError):
    """An artifact is missing or its content does not match the sha256 recorded for it."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactStore:
    """Files under ``root``, written atomically and addressed by content."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put_bytes(self, data: bytes, suffix: str) -> tuple[str, str]:
        """Store ``data``; returns ``(uri, sha256)``. Storing the same bytes twice is a no-op."""
        digest = sha256_bytes(data)
        relative = f"{digest[:2]}/{digest}{suffix}"
        target = self.root / relative
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return SCHEME + relative, digest

    def path_of(self, uri: str) -> Path:
        if not uri.startswith(SCHEME):
            raise ArtifactIntegrityError(f"{uri!r} is not an artifact URI (expected {SCHEME}...)")
        relative = Path(uri.removeprefix(SCHEME))
        if relative.is_absolute() or ".." in relative.parts:
            raise ArtifactIntegrityError(f"{uri!r} points outside the artifact store")
        return self.root / relative

    def read_verified(self, uri: str, sha256: str) -> bytes:
        """The bytes of ``uri``, refused unless they hash to ``sha256``."""
        path = self.path_of(uri)
        if not path.is_file():
            raise ArtifactIntegrityError(f"artifact {uri} is missing from {self.root}")
        data = path.read_bytes()
        actual = sha256_bytes(data)
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {uri} has been modified: sha256 {actual[:12]}... does not match the recorded {sha256[:12]}...; "
                "refusing to load it"
            )
        return data


def default_store() -> ArtifactStore:
    from tasks.settings import get_settings

    return ArtifactStore(get_settings().artifacts_dir)
