"""A Materials Project stand-in: an HTTP server on 127.0.0.1 speaking the parts of the MP API that mp-api's
``MPRester`` uses for summary documents (``/heartbeat``, ``/materials/summary/`` with ``_fields``, ``_limit``,
``_skip``, ``material_ids``, ``deprecated``), with faults that tests can inject.

Fed with real MP structures from ../shared/data when present (``load_cgcnn_documents``), or a tiny self-made
fixture (``fixture_documents``).
"""

from __future__ import annotations

import csv
import json
import tarfile
import threading
import time
import warnings
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

DB_VERSION = "2026_11_01"
EMMET_VERSION = "0.87.3"
STAMP = "2026-11-01 00:00:00"


def document(material_id: str, structure, number: int | None, symbol: str = "", crystal_system: str = "",
             last_updated: str = STAMP, deprecated: bool = False, theoretical: bool = False) -> dict:
    return {
        "material_id": material_id,
        "structure": structure.as_dict() if hasattr(structure, "as_dict") else structure,
        "symmetry": {"number": number, "symbol": symbol, "crystal_system": crystal_system, "symprec": 0.1},
        "formula_pretty": structure.composition.reduced_formula if hasattr(structure, "composition") else None,
        "last_updated": last_updated,
        "deprecated": deprecated,
        "theoretical": theoretical,
    }


def fixture_documents(count: int = 8) -> list[dict]:
    """Textbook crystals built in code (used when ../shared/data is absent): the eight below, then strained
    copies of them (lattice scaled by 1 % steps, ids mp-900000 ...) up to ``count`` documents."""
    from pymatgen.core import Lattice, Structure

    crystals = [
        ("mp-22862", Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [.5, .5, .5]]), 225),
        ("mp-149", Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]), 227),
        ("mp-2657", Structure.from_spacegroup("P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"],
                                              [[0, 0, 0], [.305, .305, 0]]), 136),
        ("mp-573", Structure.from_spacegroup("Pm-3m", Lattice.cubic(4.11), ["Cs", "Cl"], [[0, 0, 0], [.5, .5, .5]]), 221),
        ("mp-30", Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.61), ["Cu"], [[0, 0, 0]]), 225),
        ("mp-13", Structure.from_spacegroup("Im-3m", Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]]), 229),
        ("mp-2133", Structure.from_spacegroup("P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"],
                                              [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]), 186),
        ("mp-1143", Structure.from_spacegroup("R-3c", Lattice.hexagonal(4.76, 12.99), ["Al", "O"],
                                              [[0, 0, 0.352], [0.306, 0, 0.25]]), 167),
    ]
    docs = [document(mid, s, sg) for mid, s, sg in crystals]
    k = 0
    while len(docs) < count:
        mid, structure, sg = crystals[k % len(crystals)]
        strained = structure.copy()
        strained.scale_lattice(structure.volume * (1 + 0.01 * (k // len(crystals) + 1)) ** 3)
        docs.append(document(f"mp-{900000 + k}", strained, sg))
        k += 1
    return docs


def _parse_cif_chunk(items: list[tuple[str, str, int, str, str]]) -> list[dict]:
    from pymatgen.core import Structure

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for mid, text, sg, symbol, system in items:
            out.append(document(mid, Structure.from_str(text, fmt="cif"), sg, symbol, system))
    return out


def load_cgcnn_documents(root: Path, limit: int | None = None, workers: int = 1) -> list[dict]:
    """Summary documents for the CGCNN MP structures (labels as spglib gives them at 0.1, like MP)."""
    labels = {}
    with open(root / "labels_spglib.csv") as fh:
        for row in csv.DictReader(fh):
            labels[f"data/{row['cif_index']}.cif"] = (row["material_id"], int(row["spg_number_symprec0.1"]),
                                                      row["spg_symbol_symprec0.1"], row["crystal_system_symprec0.1"])
    items = []
    with tarfile.open(root / "cifs.tar.gz") as tar:
        for member in tar:
            if member.name in labels:
                mid, sg, symbol, system = labels[member.name]
                items.append((int(member.name[5:-4]), (mid, tar.extractfile(member).read().decode(), sg, symbol, system)))
                if limit is not None and len(items) >= limit:
                    break
    items = [item for _, item in sorted(items)]
    chunks = [items[i:i + 500] for i in range(0, len(items), 500)]
    if workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(workers) as pool:
            return [doc for batch in pool.map(_parse_cif_chunk, chunks) for doc in batch]
    return [doc for chunk in chunks for doc in _parse_cif_chunk(chunk)]


def canonical_id(material_id: str) -> str:
    from mp_api.client.core.utils import validate_ids

    try:
        return validate_ids([material_id])[0]
    except Exception:
        return material_id


class MPStandIn:
    """The server. ``faults`` is a queue of what the next summary requests get instead of an answer:
    an int status code, ``"timeout"`` (sleep past the client's timeout), or ``"truncate"`` (half a JSON body)."""

    def __init__(self, documents: list[dict], timeout_sleep_s: float = 3.0) -> None:
        self.documents = {d["material_id"]: d for d in documents}
        self.order = [d["material_id"] for d in documents]
        self.faults: deque = deque()
        self.requests: list[dict] = []
        self.timeout_sleep_s = timeout_sleep_s
        self.delay_s = 0.0  # added to every summary request (to make a refresh slow enough to kill mid-run)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- data changes a test can make ---------------------------------------------------------------
    def update(self, material_id: str, **changes) -> None:
        with self._lock:
            self.documents[material_id] = {**self.documents[material_id], **changes}

    def add(self, doc: dict) -> None:
        with self._lock:
            if doc["material_id"] not in self.documents:
                self.order.append(doc["material_id"])
            self.documents[doc["material_id"]] = doc

    # -- serving ------------------------------------------------------------------------------------
    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> "MPStandIn":
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                standin._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "MPStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _send(self, handler, status: int, payload, raw: bytes | None = None) -> None:
        body = raw if raw is not None else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        try:
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle(self, handler) -> None:
        url = urlparse(handler.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path.rstrip("/")
        if path == "/heartbeat":
            return self._send(handler, 200, {"db_version": DB_VERSION, "access_controlled_batch_ids": [],
                                             "version": EMMET_VERSION})
        if path != "/materials/summary":
            return self._send(handler, 404, {"detail": f"no route {url.path}"})
        if not handler.headers.get("x-api-key"):
            return self._send(handler, 401, {"detail": "missing API key"})
        with self._lock:
            self.requests.append(params)
            fault = self.faults.popleft() if self.faults else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if isinstance(fault, int):
            return self._send(handler, fault, {"detail": f"injected {fault}"})
        if fault == "timeout":
            time.sleep(self.timeout_sleep_s)
            return self._send(handler, 504, {"detail": "injected timeout"})
        with self._lock:
            docs = [self.documents[mid] for mid in self.order]
        if "material_ids" in params:
            # the client sends ids in MP's canonical form (large numbers become alpha ids), as MP stores them
            wanted = set(params["material_ids"].split(","))
            docs = [d for d in docs if d["material_id"] in wanted or canonical_id(d["material_id"]) in wanted]
        if "deprecated" in params:
            flag = params["deprecated"].lower() == "true"
            docs = [d for d in docs if bool(d.get("deprecated")) == flag]
        total = len(docs)
        skip, limit = int(params.get("_skip", 0)), int(params.get("_limit", 1000))
        page = docs[skip:skip + limit]
        if "_fields" in params and params.get("_all_fields", "false").lower() != "true":
            fields = params["_fields"].split(",")
            page = [{f: d.get(f) for f in fields} for d in page]
        payload = {"data": page, "meta": {"total_doc": total, "max_limit": 100_000, "db_version": DB_VERSION}}
        if fault == "truncate":
            body = json.dumps(payload).encode()
            return self._send(handler, 200, None, raw=body[: len(body) // 2])
        self._send(handler, 200, payload)
