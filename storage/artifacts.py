"""Content-addressed artifact store: files named by their sha256, checked on every load.

Only safe formats are stored (XGBoost UBJ inside numpy ``.npz`` loaded with ``allow_pickle=False``, JSON,
PNG); nothing is ever unpickled. URIs look like ``artifact://ab/abcdef....npz`` and resolve under the root, so
the registry does not care where the store lives. The root is a local directory, or any fsspec URL
(``s3://bucket/spacegroup``, ``gcs://...``, ``memory://...``; install the matching fsspec backend, e.g. s3fs)
for object storage shared by several machines.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

SCHEME = "artifact://"


class ArtifactIntegrityError(RuntimeError):
    """An artifact is missing or its content does not match the sha256 recorded for it."""


class ArtifactStoreError(RuntimeError):
    """The artifact store cannot be opened (unknown URL scheme, missing fsspec backend)."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_ADDRESSED_NAME = re.compile(r"^([0-9a-f]{64})(\.[A-Za-z0-9.]+)?$")


def _is_url(root: str | Path) -> bool:
    return isinstance(root, str) and "://" in root and not root.startswith("file://")


class ArtifactStore:
    """Files under ``root`` (a directory or an fsspec URL), written atomically and addressed by content."""

    def __init__(self, root: str | Path) -> None:
        if _is_url(root):
            import fsspec

            self.url = str(root).rstrip("/")
            try:
                self._fs, self._base = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:  # fsspec: unknown protocol, or its backend is not installed
                raise ArtifactStoreError(f"cannot open the artifact store {self.url}: {exc}") from None
            self.root = None
        else:
            self.url = None
            self._fs = None
            self.root = Path(str(root).removeprefix("file://"))

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url or str(self.root)!r})"

    @property
    def lock_path(self) -> Path:
        """A local file that processes sharing this store lock when they must not race (bootstrap)."""
        if self.root is not None:
            return self.root / ".bootstrap.lock"
        return Path(tempfile.gettempdir()) / f"spacegroup-{sha256_bytes(self.url.encode())[:16]}.lock"

    def put_bytes(self, data: bytes, suffix: str) -> tuple[str, str]:
        """Store ``data``; returns ``(uri, sha256)``. Storing the same bytes twice is a no-op."""
        digest = sha256_bytes(data)
        relative = f"{digest[:2]}/{digest}{suffix}"
        if self._fs is not None:
            target = f"{self._base}/{relative}"
            if not self._fs.exists(target):
                self._fs.makedirs(f"{self._base}/{digest[:2]}", exist_ok=True)  # no-op on object stores
                self._fs.pipe_file(target, data)  # object stores publish a whole object or nothing
            return SCHEME + relative, digest
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

    def _relative(self, uri: str) -> PurePosixPath:
        if not uri.startswith(SCHEME):
            raise ArtifactIntegrityError(f"{uri!r} is not an artifact URI (expected {SCHEME}...)")
        relative = PurePosixPath(uri.removeprefix(SCHEME))
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            raise ArtifactIntegrityError(f"{uri!r} points outside the artifact store")
        return relative

    def path_of(self, uri: str) -> Path:
        """The local file of ``uri`` (local stores only)."""
        if self.root is None:
            raise ArtifactIntegrityError(f"the artifact store {self.url} is not a local directory")
        return self.root / self._relative(uri)

    def _read(self, uri: str) -> bytes:
        relative = self._relative(uri)
        if self._fs is not None:
            try:
                return self._fs.cat_file(f"{self._base}/{relative}")
            except FileNotFoundError:
                raise ArtifactIntegrityError(f"artifact {uri} is missing from {self.url}") from None
        path = self.root / relative
        if not path.is_file():
            raise ArtifactIntegrityError(f"artifact {uri} is missing from {self.root}")
        return path.read_bytes()

    def read_verified(self, uri: str, sha256: str | None = None) -> bytes:
        """The bytes of ``uri``, refused unless they hash to ``sha256`` (default: the digest its name carries)."""
        if sha256 is None:
            match = _ADDRESSED_NAME.match(self._relative(uri).name)
            if match is None:
                raise ArtifactIntegrityError(f"{uri!r} is not content-addressed and no sha256 was given")
            sha256 = match.group(1)
        data = self._read(uri)
        actual = sha256_bytes(data)
        if actual != sha256:
            raise ArtifactIntegrityError(
                f"artifact {uri} has been modified: sha256 {actual[:12]}... does not match the recorded {sha256[:12]}...; "
                "refusing to load it"
            )
        return data


def store_for(settings) -> ArtifactStore:
    """The store a ``Settings`` names: ``artifacts_url`` if set, else ``<home>/artifacts``."""
    return ArtifactStore(settings.artifacts_url or settings.artifacts_dir)


def default_store() -> ArtifactStore:
    from tasks.settings import get_settings

    return store_for(get_settings())
