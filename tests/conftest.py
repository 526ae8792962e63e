"""Shared fixtures: real data from ../shared/datasets, a real Neo4j, a small demo catalog."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
IN_CI = os.environ.get("CI", "").lower() == "true"
SCHEMAS = REPO / "kgrec" / "json_schemas"

# a tiny generic export, the starting point of the bad-input tests
PRODUCTS = "product_id,title,description,price,brand,categories,tags\n" \
           "p1,Red Mug,A <b>red</b> mug &amp; saucer,9.5,Acme,Home > Kitchen > Mugs,gift|ceramic\n" \
           "p2,Blue Mug,A blue mug,12,Acme,Home > Kitchen > Mugs,ceramic\n" \
           "p3,Tea Pot,Cast iron pot,30,Teaco,Home > Kitchen,\n"
INTERACTIONS = "user_id,product_id,kind,rating,timestamp\n" \
               "u1,p1,purchase,,1600000000\n" \
               "u1,p2,rating,4,1600000100\n" \
               "u2,p3,purchase,,1600000200\n"


def write(folder: Path, name: str, text: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode() if isinstance(text, str) else text))
    elif isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def validate(name: str, data: dict) -> None:
    import jsonschema

    jsonschema.validate(data, json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Text-embedding cache and kgrec home in a per-session temp folder (never the user's)."""
    if "KGREC_CACHE" not in os.environ:
        os.environ["KGREC_CACHE"] = str(tmp_path_factory.mktemp("kgrec-cache"))
    yield


def shared_dataset(name: str) -> Path:
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"{path} is absent (the public datasets live in ../shared/datasets beside the repo)")
    return path


@pytest.fixture(scope="session")
def magazine() -> Path:
    return shared_dataset("amazon-magazine-2018")


@pytest.fixture(scope="session")
def scientific() -> Path:
    return shared_dataset("amazon-scientific-2018")


@pytest.fixture(scope="session")
def small_demo():
    from kgrec.loaders import load_catalog

    return load_catalog("demo", scale=0.1, seed=1)


@pytest.fixture(scope="session")
def neo4j_config(tmp_path_factory):
    """A real Neo4j: ``NEO4J_URI`` when set, otherwise one started by the kgrec launcher."""
    from kgrec.neo4j import server
    from kgrec.neo4j.connection import Neo4jConfig

    if os.environ.get("NEO4J_URI"):
        yield Neo4jConfig(os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"),
                          os.environ.get("NEO4J_PASSWORD", ""))
        return
    try:
        proc, state = server.spawn(tmp_path_factory.mktemp("neo4j"), exit_on_stdin_eof=True)
    except server.Neo4jServerError as exc:
        if IN_CI:
            pytest.fail(f"Neo4j did not start in CI: {exc}")
        pytest.skip(f"no Neo4j: {exc}")
    try:
        yield Neo4jConfig(state.uri, state.user, state.password)
    finally:
        proc.stdin.close()  # the launcher shuts down on stdin EOF
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def neo4j_driver(neo4j_config):
    from kgrec.neo4j.connection import driver

    drv = driver(neo4j_config)
    drv.execute_query("MATCH (n) DETACH DELETE n")
    yield drv
    drv.close()


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``kgrec ARGS`` in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "kgrec.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=REPO)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, small_demo):
    """A small R-GCN run on the small demo catalog (shared by the explain/search/profile tests)."""
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    out = tmp_path_factory.mktemp("demo-run")
    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, out=str(out),
                      baselines=("trending",), optim=OptimConfig(epochs=5, batch_size=512, negatives=16, patience=5))
    run_training(cfg, small_demo)
    return out


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()
