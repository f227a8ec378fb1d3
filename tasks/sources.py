"""Where crystals come from: the Materials Project (through mp-api), local files, or the synthetic generator.

Every source yields chunks of :class:`SourceRecord`; validation and labelling happen later, once, in
``tasks.ingest``, so that a bad record from any source ends up in the same quarantine with a reason.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

log = logging.getLogger(__name__)

#: the only summary fields the refresh needs (asking for fewer keeps MP responses small)
MP_LISTING_FIELDS = ["material_id", "last_updated", "deprecated"]
MP_DOCUMENT_FIELDS = ["material_id", "structure", "symmetry", "formula_pretty", "last_updated", "deprecated",
                      "theoretical"]
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")
MAX_MEMBER_BYTES = 20_000_000  # one structure file; larger archive members are refused unread (zip bombs)
SYNTHETIC_SOURCE = "synthetic"  # the name of SyntheticSource's records and dataset versions


class SourceError(RuntimeError):
    """A source could not be read at all (unreachable server, unreadable archive ...)."""


@dataclass
class SourceRecord:
    """One record as a source delivered it; ``structure`` is a pymatgen dict or text, not yet validated."""

    source: str
    source_id: str
    structure: dict | None = None
    structure_text: str | None = None
    structure_format: str | None = None  # cif | poscar, with structure_text
    source_space_group: int | None = None
    formula: str | None = None
    last_updated: datetime | None = None
    deprecated: bool = False
    theoretical: bool | None = None
    raw: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    name: str

    def fetch(self, known: dict[str, datetime | None]) -> Iterator[list[SourceRecord]]:
        """Chunks of records that are new or changed relative to ``known`` (source id -> last update)."""


def parse_timestamp(value: Any) -> datetime | None:
    """MP timestamps are ISO strings, sometimes with a space separator; naive ones are UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, dict) and "$date" in value:
        return parse_timestamp(value["$date"])
    else:
        try:
            stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _as_utc(stamp: datetime | None) -> datetime | None:
    if stamp is None:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def is_newer(remote: datetime | None, local: datetime | None) -> bool:
    if local is None or remote is None:
        return local is None or remote is not None
    return _as_utc(remote) > _as_utc(local)


def record_from_mp_document(doc: dict, source: str = "mp") -> SourceRecord:
    """A summary document (as a dict) -> record; nothing is trusted yet, so no field access may raise."""
    symmetry = doc.get("symmetry") if isinstance(doc.get("symmetry"), dict) else {}
    number = symmetry.get("number")
    structure = doc.get("structure")
    return SourceRecord(
        source=source,
        source_id=str(doc.get("material_id") or ""),
        structure=structure if isinstance(structure, dict) else None,
        source_space_group=number if isinstance(number, int) else None,
        formula=doc.get("formula_pretty") if isinstance(doc.get("formula_pretty"), str) else None,
        last_updated=parse_timestamp(doc.get("last_updated")),
        deprecated=bool(doc.get("deprecated", False)),
        theoretical=doc.get("theoretical") if isinstance(doc.get("theoretical"), bool) else None,
        raw={k: v for k, v in doc.items() if k != "structure"},
    )


class MaterialsProjectSource:
    """Summary documents from the Materials Project through the real mp-api client.

    Incremental: one cheap listing (id, last_updated, deprecated) of everything, then full documents only for
    ids that are new, newer than what the registry holds, or whose deprecation changed, in chunks by id.
    Transient failures (429, 5xx, timeouts, a truncated body) are retried with exponential backoff.
    """

    name = "mp"

    def __init__(self, api_key: str, endpoint: str | None = None, chunk_size: int = 500, listing_chunk_size: int = 5000,
                 max_attempts: int = 5, backoff_s: float = 1.0, timeout_s: int = 60,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not api_key:
            raise SourceError("the Materials Project needs an API key: set MP_API_KEY "
                              "(https://materialsproject.org/api)")
        self.api_key = api_key
        self.endpoint = endpoint
        self.chunk_size = chunk_size
        self.listing_chunk_size = listing_chunk_size
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self._sleep = sleep
        self.n_requests_retried = 0

    def _rester(self):
        import warnings

        from mp_api.client import MPRester

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MPRester(api_key=self.api_key, endpoint=self.endpoint, use_document_model=False,
                            mute_progress_bars=True, include_user_agent=True)

    def _summary(self, mpr):
        """The summary rester with our request timeout (mp-api builds it lazily, so reach the instance)."""
        summary = mpr.materials.summary
        summary.available_fields  # noqa: B018  (instantiates the lazy rester)
        instance = getattr(summary, "_obj", None) or summary
        instance.timeout = self.timeout_s
        return instance

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        for attempt in range(1, self.max_attempts + 1):
            try:
                return call()
            except Exception as exc:  # mp-api wraps HTTP errors in MPRestError; requests raises its own
                if not _is_transient(exc) or attempt == self.max_attempts:
                    raise SourceError(f"Materials Project request for {what} failed after {attempt} "
                                      f"attempt(s): {_short(exc)}") from exc
                delay = self.backoff_s * 2 ** (attempt - 1)
                log.warning("MP %s: %s; retry %d/%d in %.1f s", what, _short(exc), attempt,
                            self.max_attempts - 1, delay)
                self.n_requests_retried += 1
                self._sleep(delay)
        raise AssertionError("unreachable")

    def listing(self) -> list[dict]:
        """(material_id, last_updated, deprecated) of every material, deprecated ones included."""
        def call():
            with self._rester() as mpr:
                # num_chunks keeps mp-api from switching to its S3 bulk download for an unfiltered query
                return self._summary(mpr).search(fields=MP_LISTING_FIELDS, chunk_size=self.listing_chunk_size,
                                                    num_chunks=10**9)
        return self._with_retries("the material listing", call)

    def documents(self, material_ids: list[str]) -> list[dict]:
        def call():
            with self._rester() as mpr:
                return self._summary(mpr).search(material_ids=material_ids, fields=MP_DOCUMENT_FIELDS,
                                                    chunk_size=len(material_ids), num_chunks=1)
        return self._with_retries(f"{len(material_ids)} documents ({material_ids[0]} ...)", call)

    def changed_ids(self, known: dict[str, datetime | None], known_deprecated: dict[str, bool] | None = None) -> list[str]:
        known_deprecated = known_deprecated or {}
        changed = []
        for row in self.listing():
            mid = str(row.get("material_id"))
            if mid not in known:
                changed.append(mid)
            elif is_newer(parse_timestamp(row.get("last_updated")), known[mid]):
                changed.append(mid)
            elif bool(row.get("deprecated", False)) != known_deprecated.get(mid, False):
                changed.append(mid)
        return changed

    def fetch(self, known: dict[str, datetime | None],
              known_deprecated: dict[str, bool] | None = None) -> Iterator[list[SourceRecord]]:
        ids = self.changed_ids(known, known_deprecated)
        log.info("Materials Project: %d new or changed of the listing", len(ids))
        for start in range(0, len(ids), self.chunk_size):
            chunk = ids[start:start + self.chunk_size]
            docs = self.documents(chunk)
            returned = {_canonical(str(d.get("material_id"))) for d in docs if isinstance(d, dict)}
            records = [record_from_mp_document(d, self.name) if isinstance(d, dict) else
                       SourceRecord(self.name, "", raw={"document": repr(d)[:500]}) for d in docs]
            # an id the listing announced but the document query did not return is quarantined, not forgotten
            records += [SourceRecord(self.name, mid, raw={"missing": True}) for mid in chunk
                        if _canonical(mid) not in returned]
            yield records


def _canonical(material_id: str) -> str:
    """MP's canonical id (mp-api turns large numeric ids into alpha ids before sending them)."""
    from mp_api.client.core.utils import validate_ids

    try:
        return validate_ids([material_id])[0]
    except Exception:  # not an MP-style id: compare as given
        return material_id


def _is_transient(exc: Exception) -> bool:
    import requests

    if isinstance(exc, (requests.exceptions.Timeout, requests.exceptions.ConnectionError,
                        requests.exceptions.ChunkedEncodingError, json.JSONDecodeError)):
        return True
    text = str(exc)
    if "Max retries exceeded" in text or "timed out" in text.lower():
        return True
    for code in ("429", "500", "502", "503", "504"):
        if f"status code {code}" in text or f"{code} error" in text.lower() or f"too many {code}" in text.lower():
            return True
    # a body cut short decodes to an error from orjson/json inside mp-api
    return "JSONDecodeError" in type(exc).__name__ or "unexpected end of data" in text.lower() or \
        "unexpected character" in text.lower()


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


class LocalSource:
    """CIF/POSCAR files in a directory, a .tar.gz/.zip of them, or an MP-style JSON (list of summary docs) or CSV.

    The source id is the file name inside the collection (or ``material_id`` for JSON/CSV); a file's
    modification time stands in for ``last_updated``.
    """

    def __init__(self, path: str | Path, name: str | None = None, chunk_size: int = 500) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file or directory")
        self.name = name or f"local:{self.path.name}"
        self.chunk_size = chunk_size

    def _entries(self) -> Iterator[SourceRecord]:
        p = self.path
        lower = p.name.lower()
        if p.is_dir():
            for file in sorted(f for f in p.rglob("*") if f.is_file()):
                if _structure_format(file.name):
                    stamp = datetime.fromtimestamp(file.stat().st_mtime, timezone.utc)
                    yield self._text_record(str(file.relative_to(p)), file.read_bytes(), stamp)
        elif lower.endswith((".tar.gz", ".tgz", ".tar")):
            try:
                with tarfile.open(p) as tar:
                    for member in tar:
                        if member.isfile() and _structure_format(member.name):
                            if member.size > MAX_MEMBER_BYTES:
                                yield _too_large(self.name, member.name, member.size)
                                continue
                            data = tar.extractfile(member).read()
                            stamp = datetime.fromtimestamp(member.mtime, timezone.utc)
                            yield self._text_record(member.name, data, stamp)
            except (tarfile.TarError, EOFError, OSError) as exc:
                raise SourceError(f"{p.name}: not a readable tar archive ({exc})") from exc
        elif lower.endswith(".zip"):
            try:
                with zipfile.ZipFile(p) as archive:
                    for info in archive.infolist():
                        if not info.is_dir() and _structure_format(info.filename):
                            if info.file_size > MAX_MEMBER_BYTES:
                                yield _too_large(self.name, info.filename, info.file_size)
                                continue
                            stamp = datetime(*info.date_time, tzinfo=timezone.utc)
                            yield self._text_record(info.filename, archive.read(info), stamp)
            except (zipfile.BadZipFile, OSError) as exc:
                raise SourceError(f"{p.name}: not a readable zip archive ({exc})") from exc
        elif lower.endswith(".json"):
            yield from records_from_json_bytes(p.read_bytes(), self.name, p.name)
        elif lower.endswith(".csv"):
            yield from records_from_csv_bytes(p.read_bytes(), self.name, p.name)
        elif _structure_format(lower):
            stamp = datetime.fromtimestamp(p.stat().st_mtime, timezone.utc)
            yield self._text_record(p.name, p.read_bytes(), stamp)
        else:
            raise SourceError(f"{p.name}: expected a directory, .tar.gz, .zip, .json, .csv, .cif or POSCAR file")

    def _text_record(self, name: str, data: bytes, stamp: datetime) -> SourceRecord:
        text = data.decode("utf-8", errors="replace")
        return SourceRecord(self.name, name, structure_text=text, structure_format=_structure_format(name),
                            last_updated=stamp)

    def fetch(self, known: dict[str, datetime | None], known_deprecated=None) -> Iterator[list[SourceRecord]]:
        chunk: list[SourceRecord] = []
        for record in self._entries():
            if record.source_id in known and not is_newer(record.last_updated, known[record.source_id]):
                continue
            chunk.append(record)
            if len(chunk) >= self.chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _too_large(source: str, name: str, size: int) -> SourceRecord:
    return SourceRecord(source, name, raw={"too_large_bytes": size})


def _structure_format(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    if lower.endswith(".cif"):
        return "cif"
    if lower.endswith((".vasp", ".poscar")) or lower.startswith(("poscar", "contcar")):
        return "poscar"
    return None


def records_from_json_bytes(data: bytes, source: str, label: str) -> Iterator[SourceRecord]:
    """MP-style JSON: a list of summary documents, or {"data": [...]} as the API returns it."""
    try:
        payload = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{label}: not valid JSON ({exc})") from exc
    docs = payload.get("data") if isinstance(payload, dict) else payload
    if not isinstance(docs, list):
        raise SourceError(f"{label}: expected a JSON list of documents or an object with a 'data' list")
    for i, doc in enumerate(docs):
        if isinstance(doc, dict):
            record = record_from_mp_document(doc, source)
            record.source_id = record.source_id or f"{label}#{i}"
            yield record
        else:
            yield SourceRecord(source, f"{label}#{i}", raw={"document": repr(doc)[:500]})


def records_from_csv_bytes(data: bytes, source: str, label: str) -> Iterator[SourceRecord]:
    """CSV with ``material_id`` and a ``cif`` (or ``structure`` JSON) column, optional ``spacegroup_number``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{label}: not UTF-8 text") from exc
    csv.field_size_limit(10**8)
    reader = csv.DictReader(io.StringIO(text))
    columns = set(reader.fieldnames or [])
    if "cif" not in columns and "structure" not in columns:
        raise SourceError(f"{label}: a CSV needs a 'cif' or 'structure' column (found: {sorted(columns)})")
    for i, row in enumerate(reader):
        sid = row.get("material_id") or f"{label}#{i}"
        number = row.get("spacegroup_number") or row.get("space_group_number")
        try:
            sg = int(number) if number not in (None, "") else None
        except ValueError:
            sg = None
        record = SourceRecord(source, sid, source_space_group=sg, formula=row.get("formula"),
                              last_updated=parse_timestamp(row.get("last_updated")), raw={"row": i})
        if row.get("cif"):
            record.structure_text, record.structure_format = row["cif"], "cif"
        elif row.get("structure"):
            try:
                structure = json.loads(row["structure"])
                record.structure = structure if isinstance(structure, dict) else None
            except json.JSONDecodeError:
                record.structure = None
        yield record


class SyntheticSource:
    """Crystals from the PyXtal generator (offline default); ids are ``synthetic-<seed>-<index>``."""

    def __init__(self, n_crystals: int, seed: int = 0, n_jobs: int = 0, chunk_size: int = 500) -> None:
        self.n_crystals = n_crystals
        self.seed = seed
        self.n_jobs = n_jobs
        self.chunk_size = chunk_size
        self.name = SYNTHETIC_SOURCE

    def fetch(self, known: dict[str, datetime | None], known_deprecated=None) -> Iterator[list[SourceRecord]]:
        from tasks.synthetic import generate_crystals

        ids = [f"synthetic-{self.seed}-{k}" for k in range(self.n_crystals)]
        if all(i in known for i in ids):
            return
        crystals = generate_crystals(self.n_crystals, seed=self.seed, n_jobs=self.n_jobs)
        records = [SourceRecord(self.name, sid, structure=c.structure.as_dict(),
                                source_space_group=c.requested_space_group)
                   for sid, c in zip(ids, crystals) if sid not in known]
        for start in range(0, len(records), self.chunk_size):
            yield records[start:start + self.chunk_size]
