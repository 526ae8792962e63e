"""Run folders and the server under failure: atomic writes, concurrent writers, killed writers, tampered
checkpoints, an in-place replacement under a running server, a failing model behind /health, a flood of
explanations, a chunked body that never ends, a stale Neo4j pid, and a run folder that names a Neo4j URI.

Issue 15 #5-#10: each test here failed on the code before that issue.
"""
from __future__ import annotations

import http.client
import json
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli
from kgrec.errors import RunError
from kgrec.serve.loadtest import post, running_server
from kgrec.serve.run import load_run, run_writer


# ---------------------------------------------------------------------------- atomic run folders
def _folder(path: Path, text: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "version.txt").write_text(text)
    return path


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.") and "lock" not in p.name)


def test_a_failed_write_leaves_the_previous_version(tmp_path):
    out = _folder(tmp_path / "run", "old")
    with pytest.raises(OSError, match="disk full"), run_writer(out) as tmp:
        (tmp / "version.txt").write_text("half")
        raise OSError("disk full")
    assert (out / "version.txt").read_text() == "old" and _siblings(out) == []
    with run_writer(out) as tmp:
        (tmp / "version.txt").write_text("new")
    assert (out / "version.txt").read_text() == "new" and _siblings(out) == []


def test_a_second_writer_fails_at_once(tmp_path):
    out = _folder(tmp_path / "run", "old")
    with run_writer(out) as tmp:
        (tmp / "version.txt").write_text("first")
        t0 = time.monotonic()
        with pytest.raises(RunError, match="another kgrec process is writing"), run_writer(out):
            pass
        assert time.monotonic() - t0 < 5
    assert (out / "version.txt").read_text() == "first"


def test_a_killed_writer_loses_nothing(tmp_path):
    out = _folder(tmp_path / "run", "old")
    code = ("import sys, time; from kgrec.serve.run import run_writer\n"
            f"with run_writer({str(out)!r}) as tmp:\n"
            "    (tmp / 'version.txt').write_text('half'); print('ready', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "version.txt").read_text() == "old"  # the served version is untouched
    with run_writer(out) as tmp:  # the lock died with the process; its temporary folder is cleaned up
        (tmp / "version.txt").write_text("new")
    assert (out / "version.txt").read_text() == "new" and _siblings(out) == []


def test_a_writer_killed_between_its_renames_is_recovered(tmp_path):
    out = tmp_path / "run"
    _folder(tmp_path / ".run.old-4242", "old")  # moved aside, the new version never moved in
    with pytest.raises(RunError, match="interrupted.*old-4242"):
        load_run(out)
    with pytest.raises(RuntimeError), run_writer(out):
        raise RuntimeError("this write fails too")
    assert (out / "version.txt").read_text() == "old" and _siblings(out) == []


# ---------------------------------------------------------------------------- tampered checkpoints
def _tampered(demo_run: Path, tmp_path: Path, file: str, change) -> Path:
    run = tmp_path / "tampered"
    shutil.copytree(demo_run, run)
    obj = torch.load(run / file, weights_only=True)
    change(obj)
    torch.save(obj, run / file)
    return run


def _first_sparse_path(ckpt: dict) -> dict:
    return next(s for s in ckpt["paths"]["state"].values() if "indices" in s)


@pytest.mark.parametrize("file, change, needle", [
    ("checkpoint.pt", lambda c: _first_sparse_path(c)["indices"].__setitem__((1, 0), 10**9), "indexes outside"),
    ("checkpoint.pt", lambda c: c["train_items"].__setitem__(0, -3), "train_items indexes outside"),
    ("checkpoint.pt", lambda c: c["item_emb"].__setitem__((0, 0), float("nan")), "item_emb holds NaN"),
    ("checkpoint.pt", lambda c: c["id_maps"]["product"].pop(), "titles do not match"),
    ("graph.pt", lambda g: next(iter(g["edge_index"].values())).__setitem__((0, 0), 10**7), "index outside"),
])
def test_a_tampered_run_is_a_clear_error_not_a_crash(demo_run, tmp_path, file, change, needle):
    run = _tampered(demo_run, tmp_path, file, change)
    with pytest.raises(RunError, match=needle):
        load_run(run)
    out = run_cli("recommend", str(run), "--user", load_run(demo_run).user_ids[0])
    assert out.returncode == 2 and needle.split()[0] in out.stderr and "Traceback" not in out.stderr


def test_the_run_reads_its_own_catalog_not_the_export(demo_run, tmp_path):
    run = tmp_path / "moved"
    shutil.copytree(demo_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"] = str(tmp_path / "export-that-was-deleted")
    (run / "config.json").write_text(json.dumps(cfg))
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, "-m", "kgrec.cli", "search", str(run), "accessories", "--json"],
                         capture_output=True, text=True, cwd=elsewhere, timeout=300)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["results"]) == 10


# ---------------------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def other_run(tmp_path_factory):
    """A second, different run (another catalog: other users and products) to swap in under a server."""
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.loaders import load_catalog
    from kgrec.train.pipeline import run_training

    out = tmp_path_factory.mktemp("other-run")
    cfg = TrainConfig(data="demo", scale=0.08, seed=7, quiet=True, device="cpu", hidden=16, out=str(out),
                      baselines=(), optim=OptimConfig(epochs=3, batch_size=512, negatives=16, patience=3))
    run_training(cfg, load_catalog("demo", scale=0.08, seed=7))
    return out


def _answers(base: str, users: list[str]) -> dict:
    got = {}
    for u in users:
        status, body = post(base, "/recommend", {"user_id": u, "k": 5})
        got[u] = [r["product_id"] for r in body["recommendations"]] if status == 200 else status
    return got


def _expected(run: Path, users: list[str]) -> dict:
    from kgrec import Recommender

    rec = Recommender.load(run)
    return {u: [r["product_id"] for r in rec.recommend(u, k=5)] for u in users}


def test_an_in_place_replacement_is_served_only_after_reload(demo_run, other_run, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(demo_run, live)
    old_users = load_run(demo_run).user_ids[:3]
    new_users = [u for u in load_run(other_run).user_ids if u not in set(load_run(demo_run).user_ids)][:3] \
        or load_run(other_run).user_ids[:3]
    before = _expected(demo_run, old_users)
    with running_server(live) as base:
        pair = {"user_id": old_users[0], "product_id": before[old_users[0]][0], "top": 2}
        status, explained = post(base, "/explain", pair)
        assert status == 200
        with run_writer(live) as tmp:  # what `kgrec refresh --in-place` does
            shutil.copytree(other_run, tmp, dirs_exist_ok=True)
        # the running server still answers from the version it loaded, consistently
        assert _answers(base, old_users) == before
        status, again = post(base, "/explain", pair)
        assert status == 200 and again["paths"] == explained["paths"]
        status, body = post(base, "/admin/reload", {})
        assert status == 200, body
        assert _answers(base, new_users) == _expected(other_run, new_users)
        with urllib_get(base + "/health") as (code, health):
            assert code == 200 and health["users"] == len(load_run(other_run).user_ids)


@contextmanager
def urllib_get(url: str):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            yield resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        yield err.code, json.loads(err.read())


@contextmanager
def in_process_server(run_dir: Path):
    """``create_app`` under uvicorn in a thread, so a test can change the process's objects."""
    import uvicorn

    from kgrec.neo4j.server import free_port
    from kgrec.serve.http import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(run_dir), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_health_fails_when_the_model_fails(demo_run, monkeypatch):
    from kgrec.serve.recommend import Recommender

    with in_process_server(demo_run) as base:
        with urllib_get(base + "/health") as (code, body):
            assert code == 200 and body["status"] == "ok"

        def broken(self, users):
            raise RuntimeError("the model is broken")

        monkeypatch.setattr(Recommender, "score_matrix", broken)
        with urllib_get(base + "/health") as (code, body):
            assert code == 503 and body["status"] == "failing"
        status, _ = post(base, "/recommend", {"user_id": load_run(demo_run).user_ids[0]})
        assert status == 500


def test_a_flood_of_explanations_gets_503_and_health_stays_fast(demo_run, monkeypatch):
    from kgrec.serve.explain import Explainer
    from kgrec.serve.http import MAX_EXPLAIN

    gate, entered = threading.Event(), threading.Semaphore(0)

    def slow(self, user, product, top=5):
        entered.release()
        gate.wait(60)
        return {"user_id": user, "product_id": product, "paths": []}

    monkeypatch.setattr(Explainer, "explain", slow)
    run = load_run(demo_run)
    body = {"user_id": run.user_ids[0], "product_id": run.product_ids[0]}
    with in_process_server(demo_run) as base:
        results: list[int] = []
        workers = [threading.Thread(target=lambda: results.append(post(base, "/explain", body)[0]))
                   for _ in range(MAX_EXPLAIN)]
        for w in workers:
            w.start()
        for _ in range(MAX_EXPLAIN):
            assert entered.acquire(timeout=60)
        status, answer = post(base, "/explain", body)
        assert status == 503 and "try again" in answer["detail"]
        t0 = time.perf_counter()
        with urllib_get(base + "/health") as (code, _):
            assert code == 200
        assert time.perf_counter() - t0 < 5
        status, _ = post(base, "/recommend", {"user_id": run.user_ids[0]})
        assert status == 200
        gate.set()
        for w in workers:
            w.join(60)
        assert results == [200] * MAX_EXPLAIN


def test_a_chunked_body_is_cut_off_at_the_limit(demo_run):
    with running_server(demo_run) as base:
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        conn.putrequest("POST", "/recommend")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        chunk = b"x" * (1 << 20)
        sent = 0
        try:
            for _ in range(400):  # would be 400 MB
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
                if select.select([conn.sock], [], [], 0)[0]:  # the server has answered
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        resp = conn.getresponse()
        assert resp.status == 413 and b"request body over" in resp.read()
        # answered while the body was still streaming in, not after buffering it
        assert sent <= 16 * len(chunk), f"the server answered only after {sent >> 20} MB"
        conn.close()
        with urllib_get(base + "/health") as (code, _):
            assert code == 200


# ---------------------------------------------------------------------------- Neo4j safety
def test_neo4j_stop_never_signals_a_process_that_reused_the_pid(tmp_path):
    from kgrec.neo4j import server

    other = subprocess.Popen(["sleep", "60"])
    try:
        state = server.ServerState(other.pid, 7687, "bolt://127.0.0.1:7687", "neo4j", "pw", str(tmp_path),
                                   str(tmp_path / "launcher.log"))
        server._state_file(tmp_path).write_text(json.dumps(state.__dict__))
        assert server.stop(tmp_path) is None
        assert other.poll() is None, "kgrec neo4j stop killed an unrelated process"
        assert not server._state_file(tmp_path).exists()
    finally:
        other.kill()
        other.wait()


def test_a_run_folder_cannot_choose_where_the_password_goes(demo_run, tmp_path):
    """config.json names a Bolt server; kgrec must never connect there (only flags and env choose)."""
    trap = socket.socket()
    trap.bind(("127.0.0.1", 0))
    trap.listen(8)
    trap.settimeout(0.5)
    run = tmp_path / "evil"
    shutil.copytree(demo_run, run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["neo4j"] = f"bolt://127.0.0.1:{trap.getsockname()[1]}"
    (run / "config.json").write_text(json.dumps(cfg))
    with socket.socket() as s:  # a closed port for the flag: the explain check fails, cleanly
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    r = load_run(demo_run)
    env = {"NEO4J_PASSWORD": "secret-for-the-real-server", "NEO4J_URI": f"bolt://127.0.0.1:{closed}"}
    out = run_cli("explain", str(run), "--user", r.user_ids[0], "--product", r.product_ids[0], "--neo4j", env=env)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    try:
        conn, _ = trap.accept()
        conn.close()
        pytest.fail("kgrec connected to the Neo4j server named in a run folder's config.json")
    except TimeoutError:
        pass
    finally:
        trap.close()
