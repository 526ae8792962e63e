"""The test server is a real Neo4j, and the CLI manages a local one cleanly."""
from __future__ import annotations

import os
import socket
import time

import pytest

from conftest import run_cli

pytestmark = pytest.mark.neo4j


def test_server_is_real_neo4j(neo4j_driver):
    import neo4j.exceptions

    info = neo4j_driver.get_server_info()
    assert info.agent.startswith("Neo4j/")
    neo4j_driver.execute_query(
        "CREATE CONSTRAINT kgrec_probe_key IF NOT EXISTS FOR (n:KgrecProbe) REQUIRE n.key IS UNIQUE")
    try:
        neo4j_driver.execute_query("CREATE (:KgrecProbe {key: $k})", k="a")
        with pytest.raises(neo4j.exceptions.ConstraintError):
            neo4j_driver.execute_query("CREATE (:KgrecProbe {key: $k})", k="a")
        props = {"key": "b", "title": "Quote ' and \" and `tick`", "price": 12.5, "tags": ["x", "y"]}
        neo4j_driver.execute_query("CREATE (n:KgrecProbe) SET n = $props", props=props)
        records, _, _ = neo4j_driver.execute_query("MATCH (n:KgrecProbe {key: $k}) RETURN n", k="b")
        assert dict(records[0]["n"]) == props
    finally:
        neo4j_driver.execute_query("DROP CONSTRAINT kgrec_probe_key IF EXISTS")


def _java_pids_for(path: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "io.kgrec.launcher.Launcher" in cmd and path in cmd:
                pids.append(int(entry))
    return pids


@pytest.mark.slow
def test_cli_start_status_stop_and_busy_port(tmp_path):
    from kgrec.neo4j.connection import Neo4jConfig, driver
    from kgrec.neo4j.server import free_port

    home = tmp_path / "home"
    env = {"KGREC_HOME": str(home), "KGREC_LAUNCHER_BUILD": os.environ.get(
        "KGREC_LAUNCHER_BUILD", os.path.expanduser("~/.kgrec/launcher-build"))}
    port = free_port()
    started = run_cli("neo4j", "start", "--port", str(port), env=env)
    if started.returncode != 0 and "Maven" in started.stderr and os.environ.get("CI") != "true":
        pytest.skip(started.stderr)
    assert started.returncode == 0, started.stderr
    try:
        status = run_cli("neo4j", "status", env=env)
        assert status.returncode == 0 and f"bolt://127.0.0.1:{port}" in status.stdout
        password = next(line.split(":", 1)[1].strip() for line in status.stdout.splitlines() if "password:" in line)
        drv = driver(Neo4jConfig(f"bolt://127.0.0.1:{port}", "neo4j", password))
        assert drv.get_server_info().agent.startswith("Neo4j/")
        drv.close()
        # a second server on the same (busy) port fails fast with a clear message
        other = dict(env, KGREC_HOME=str(tmp_path / "other"))
        t0 = time.monotonic()
        busy = run_cli("neo4j", "start", "--port", str(port), env=other, timeout=60)
        assert busy.returncode == 2
        assert f"port {port}" in busy.stderr and "already in use" in busy.stderr
        assert time.monotonic() - t0 < 30
    finally:
        stopped = run_cli("neo4j", "stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert _java_pids_for(str(home)) == []
    assert run_cli("neo4j", "status", env=env).returncode == 3
    with socket.socket() as s:  # nothing listens on the port any more
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
