"""Load test of the API under gunicorn: /predict for a pattern and for a formula at 16 concurrent clients.

    python bench/api_load.py [--requests 10000] [--clients 16] [--workers 2]

Clients run in 2 processes x 8 threads on the same machine as the server (so they take CPU from it: the
figures are a floor). Baseline in the same run: GET /health through the same server, auth and rate limiter.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import REPO, write_section  # noqa: E402

CATIONS = ["Li", "Na", "K", "Rb", "Cs", "Mg", "Ca", "Sr", "Ba", "Sc", "Y", "La", "Ti", "Zr", "V", "Nb", "Cr", "Mo",
           "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Al", "Ga", "In", "Si", "Ge", "Sn", "Bi", "Ce", "Nd", "Gd"]
ANIONS = ["O", "S", "Se", "F", "Cl", "Br", "N", "P"]


def distinct_formulas(n: int, seed: int = 0) -> list[str]:
    """``n`` different formulas (so the server's featurisation cache is not what is measured)."""
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n:
        cations = rng.sample(CATIONS, rng.choice([1, 1, 2, 2, 3]))
        parts = [f"{c}{rng.randint(1, 4)}" for c in cations] + [f"{rng.choice(ANIONS)}{rng.randint(1, 8)}"]
        out.add("".join(parts))
    return sorted(out)


def _pattern_body() -> bytes:
    rows = [line.split() for line in (REPO / "tasks/examples/Si_diamond_CuKa.xy").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    two_theta = [float(r[0]) for r in rows]
    intensity = [float(r[1]) for r in rows]
    return json.dumps({"xrd": {"two_theta_deg": two_theta, "intensity": intensity, "wavelength": "CuKa"}}).encode()


def _client_process(args) -> tuple[list[float], int]:
    port, key, kind, n_requests, n_threads, seed = args
    pattern = _pattern_body() if kind == "pattern" else None
    formulas = distinct_formulas(20_000)
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    per_thread = [n_requests // n_threads + (1 if i < n_requests % n_threads else 0) for i in range(n_threads)]

    def worker(count: int, thread_seed: int):
        rng = random.Random(thread_seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        local, bad = [], 0
        for _ in range(count):
            if kind == "pattern":
                method, path, body = "POST", "/predict", pattern
            elif kind == "formula":
                method, path, body = "POST", "/predict", json.dumps({"formula": rng.choice(formulas)}).encode()
            else:
                method, path, body = "GET", "/health", None
            start = time.perf_counter()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    bad += 1
            except (OSError, http.client.HTTPException):
                bad += 1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            local.append(time.perf_counter() - start)
        with lock:
            latencies.extend(local)
            errors[0] += bad

    threads = [threading.Thread(target=worker, args=(c, seed * 100 + i)) for i, c in enumerate(per_thread)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids``."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def run_scenario(port: int, key: str, kind: str, n_requests: int, clients: int) -> dict:
    processes = 2
    threads = clients // processes
    share = [n_requests // processes + (1 if i < n_requests % processes else 0) for i in range(processes)]
    start = time.perf_counter()
    with ProcessPoolExecutor(processes) as pool:
        results = list(pool.map(_client_process, [(port, key, kind, share[i], threads, i) for i in range(processes)]))
    wall = time.perf_counter() - start
    latencies = np.array([x for lat, _ in results for x in lat]) * 1000
    errors = sum(e for _, e in results)
    return {"kind": kind, "n": len(latencies), "errors": errors, "wall_s": wall, "rps": len(latencies) / wall,
            "p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, SPACEGROUP_HOME=home, SPACEGROUP_API_RATE_LIMIT_PER_MINUTE="10000000",
                   SPACEGROUP_LOG_LEVEL="WARNING")
        env.pop("SPACEGROUP_DATABASE_URL", None)
        spacegroup = str(Path(sys.executable).with_name("spacegroup"))
        key = subprocess.run([spacegroup, "keys", "create", "--role", "user"], env=env, capture_output=True,
                             text=True, check=True).stdout.strip().splitlines()[-1]
        port = 5600 + random.randint(0, 300)
        server = subprocess.Popen([spacegroup, "serve", "--port", str(port), "--workers", str(args.workers)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    c.request("GET", "/health")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    time.sleep(0.5)
            time.sleep(3)  # workers finish warming up
            pids = _worker_pids(server.pid)
            run_scenario(port, key, "formula", 400, args.clients)  # warm every worker thread
            rss = [_rss_mb(pids)]
            rows = []
            for kind in ("health", "pattern", "formula"):
                n = args.requests if kind != "health" else max(2000, args.requests // 2)
                cpu_before = _cpu_s(pids)
                rows.append(run_scenario(port, key, kind, n, args.clients))
                rows[-1]["server_cpu_ms"] = (_cpu_s(pids) - cpu_before) / rows[-1]["n"] * 1000
                rss.append(_rss_mb(pids))
                print(rows[-1], f"rss {rss[-1]:.0f} MB", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)

    base = rows[0]["rps"]
    table = "\n".join(
        f"| {r['kind']} | {r['n']} | {r['errors']} | {r['rps']:.0f} | {r['rps'] / base:.2f} | {r['p50']:.1f} | "
        f"{r['p99']:.1f} | {r['server_cpu_ms']:.1f} |" for r in rows)
    body = f"""## API load (issue 6)

`spacegroup serve` (gunicorn, {args.workers} balanced gthread workers x 16 threads), {args.clients} concurrent keep-alive
clients (2 processes x {args.clients // 2} threads, on the same machine), SQLite registry, every prediction
recorded. Pattern: the {len(json.loads(_pattern_body())['xrd']['two_theta_deg']):,}-point Si example as JSON;
formula: drawn at random from 20,000 distinct formulas (so the server's formula-feature cache rarely hits).

| request | requests | errors | req/s | vs /health | p50 (ms) | p99 (ms) | server CPU per request (ms) |
|---|---:|---:|---:|---:|---:|---:|---:|
{table}

Worker memory (RSS, all workers): {' -> '.join(f'{m:.0f}' for m in rss)} MB (after warm-up, then after each run).
Targets: >= 200 req/s, p99 <= 100 ms, 0 errors in 10,000 requests, memory stable.
"""
    write_section("api_load", body)
    print(body)


if __name__ == "__main__":
    main()
