"""A bounded HTTP load test for ``kgrec serve``: N requests from a few client threads, p50/p99 latency.

Used by ``benchmarks/serving.py`` and the API tests. Standard library only (urllib).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np


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
