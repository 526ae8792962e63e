"""A bounded HTTP load test for ``kgrec serve``: N requests from a few client threads, p50/p99 latency,
and a context manager that runs the real server on a free loopback port.

Used by ``benchmarks/serving.py`` and the API tests. Standard library only (urllib).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np


@contextmanager
def running_server(run_dir: str | Path, timeout: float = 120.0) -> Iterator[str]:
    """Run ``kgrec serve RUN_DIR`` on a free loopback port; yields its base URL once ``/health`` answers.

    Raises ``RuntimeError`` (with the server's stderr) when it exits or does not answer in ``timeout`` s.
    """
    from kgrec.neo4j.server import free_port

    port = free_port()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "kgrec.cli", "serve", str(run_dir), "--port", str(port),
                                 "--quiet"], stdout=subprocess.DEVNULL, stderr=err, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(base + "/health", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None:
                        err.seek(0)
                        raise RuntimeError(f"kgrec serve exited: {err.read()[-3000:]}") from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"kgrec serve did not answer /health within {timeout:.0f} s") from None
                    time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def post(base: str, path: str, body: dict | bytes, timeout: float = 60) -> tuple[int, dict | str]:
    """POST JSON (or raw bytes); returns ``(status, parsed JSON or text)`` without raising on 4xx/5xx."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw)
    except json.JSONDecodeError:
        return status, raw.decode("utf-8", "replace")


def load_test(base: str, users: list[str], requests: int = 1000, concurrency: int = 4, k: int = 10,
              seed: int = 0) -> dict:
    """``requests`` POST /recommend calls for random users; latency percentiles in ms and error count."""
    rng = np.random.default_rng(seed)
    picks = [users[i] for i in rng.integers(0, len(users), size=requests)]

    def one(user: str) -> tuple[float, int]:
        t0 = time.perf_counter()
        status, _ = post(base, "/recommend", {"user_id": user, "k": k})
        return (time.perf_counter() - t0) * 1000, status

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, picks))
    wall = time.perf_counter() - t0
    lat = np.array([r[0] for r in results])
    errors = sum(r[1] != 200 for r in results)
    return {"requests": requests, "concurrency": concurrency, "errors": int(errors),
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "max_ms": float(lat.max()), "requests_per_second": requests / wall}
