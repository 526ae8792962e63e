"""Build and run a real Neo4j Community server without Docker.

The launcher is a small Java program (``kgrec/neo4j/launcher``) built with Maven from the Neo4j
artifacts on Maven Central. It starts a Neo4j DBMS with a Bolt connector on 127.0.0.1, heap capped
at 1 GB. The password is random, passed through the environment (never argv) and stored with
mode 0600 in the server's state file; it is never printed by the logs.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

LAUNCHER_SRC = Path(__file__).parent / "launcher"
READY = "KGREC_NEO4J_READY "
MAIN_CLASS = "io.kgrec.launcher.Launcher"


class Neo4jServerError(RuntimeError):
    """The local Neo4j could not be built, started or stopped; the message says why and what to do."""


def home_dir() -> Path:
    """Where the local server keeps its build, data and state (``KGREC_HOME`` or ``~/.kgrec``)."""
    return Path(os.environ.get("KGREC_HOME", Path.home() / ".kgrec"))


@dataclass(frozen=True)
class ServerState:
    pid: int
    port: int
    uri: str
    user: str
    password: str
    data_dir: str
    log_file: str


def _sources_digest() -> str:
    import hashlib

    h = hashlib.sha256()
    for f in sorted(LAUNCHER_SRC.rglob("*")):
        if f.is_file() and "target" not in f.parts:
            h.update(f.relative_to(LAUNCHER_SRC).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def build_dir() -> Path:
    """Build folder, one per version of the launcher sources (a changed launcher is rebuilt)."""
    base = Path(os.environ.get("KGREC_LAUNCHER_BUILD", home_dir() / "launcher-build"))
    return base / _sources_digest()


def launcher_classpath(build: bool = True) -> str:
    """Classpath of the built launcher; builds it with Maven first if needed (one-time, ~1 min)."""
    target = build_dir() / "target"
    jar = target / "kgrec-neo4j-launcher-1.0.0.jar"
    if not jar.exists() or not (target / "lib").is_dir():
        if not build:
            raise Neo4jServerError(f"the Neo4j launcher is not built ({jar} missing); run 'kgrec neo4j build'")
        build_launcher()
    return f"{jar}{os.pathsep}{target / 'lib' / '*'}"


def build_launcher() -> Path:
    """Copy the launcher sources to :func:`build_dir` and run ``mvn package`` there."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise Neo4jServerError("Maven ('mvn') is not on PATH: install Maven and a JDK 17+ to run a local Neo4j, "
                               "or point kgrec at your own server with NEO4J_URI")
    dest = build_dir()
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(LAUNCHER_SRC / "pom.xml", dest / "pom.xml")
    shutil.copytree(LAUNCHER_SRC / "src", dest / "src", dirs_exist_ok=True)
    proc = subprocess.run([mvn, "-q", "-B", "package", "-DskipTests"], cwd=dest, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-20:])
        raise Neo4jServerError(f"building the Neo4j launcher with Maven failed:\n{tail}")
    return dest


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(port: int) -> bool:
    """True when something listens on 127.0.0.1:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as gone
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def spawn(data_dir: Path, port: int | None = None, password: str | None = None, exit_on_stdin_eof: bool = False,
          timeout: float = 180.0) -> tuple[subprocess.Popen, ServerState]:
    """Start the launcher as a child process and wait until Bolt is ready."""
    port = port or free_port()
    if port_in_use(port):
        raise Neo4jServerError(f"port {port} on 127.0.0.1 is already in use; choose another with --port "
                               f"or stop what is listening there")
    java = shutil.which("java")
    if java is None:
        raise Neo4jServerError("Java ('java', 17 or newer) is not on PATH; it is needed to run a local Neo4j")
    classpath = launcher_classpath()
    data_dir.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(18)
    log_file = data_dir / "launcher.log"
    env = {**os.environ, "KGREC_NEO4J_PASSWORD": password}
    args = [java, "-Xms256m", "-Xmx1g", "-XX:+UseSerialGC", "-cp", classpath, MAIN_CLASS,
            "--port", str(port), "--data-dir", str(data_dir / "db")]
    if exit_on_stdin_eof:
        args.append("--exit-on-stdin-eof")
    log = open(log_file, "w", encoding="utf-8")
    proc = subprocess.Popen(args, stdin=subprocess.PIPE if exit_on_stdin_eof else subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=not exit_on_stdin_eof)
    log.close()
    deadline = time.monotonic() + timeout
    uri = None
    while time.monotonic() < deadline:
        text = log_file.read_text(encoding="utf-8", errors="replace")
        if READY in text:
            uri = text.split(READY, 1)[1].split()[0]
            break
        if proc.poll() is not None:
            tail = "\n".join(text.splitlines()[-15:])
            raise Neo4jServerError(f"Neo4j exited during start-up (code {proc.returncode}); log {log_file}:\n{tail}")
        time.sleep(0.3)
    if uri is None:
        _terminate(proc.pid)
        raise Neo4jServerError(f"Neo4j did not become ready within {timeout:.0f} s; see {log_file}")
    state = ServerState(proc.pid, port, uri, "neo4j", password, str(data_dir), str(log_file))
    return proc, state


IMPORT_TOOL = "org.neo4j.cli.AdminTool"  # neo4j-admin's entry point, on the launcher's classpath


def bulk_import(files, data_dir: Path | None = None, heap: str = "1g", timeout: float = 3600.0) -> dict:
    """Load :func:`kgrec.neo4j.admin_csv.write_admin_import`'s ``files`` into a **fresh** database of the
    local server's ``data_dir`` with Neo4j's own import tool (``neo4j-admin database import full``, from
    the launcher's Maven artifacts), replacing what the database held. The server must be stopped.

    Returns ``{"nodes", "relationships", "seconds", "rows_per_second"}``; the counts are the tool's
    report and must equal the rows written, else :class:`Neo4jServerError` (the tool's own
    ``import.report`` in the CSV folder lists what it refused)."""
    data_dir = data_dir or default_data_dir()
    running = status(data_dir)
    if running is not None:
        raise Neo4jServerError(f"the kgrec Neo4j for {data_dir} is running (pid {running.pid}); a bulk import "
                               f"writes a fresh database offline: 'kgrec neo4j stop' first")
    java = shutil.which("java")
    if java is None:
        raise Neo4jServerError("Java ('java', 17 or newer) is not on PATH; it is needed for the Neo4j import tool")
    home = data_dir / "db"
    (home / "conf").mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
    args = [java, f"-Xmx{heap}", "-cp", launcher_classpath(), IMPORT_TOOL, "database", "import", "full",
            files.database, "--overwrite-destination", *files.args]
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=files.folder, env=env, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0 or "IMPORT DONE" not in out:
        tail = "\n".join(out.splitlines()[-15:])
        raise Neo4jServerError(f"the Neo4j import tool failed (exit {proc.returncode}):\n{tail}")
    report = out.split("IMPORT DONE", 1)[1]
    counts = {}
    for what in ("nodes", "relationships"):
        found = re.search(rf"(\d+) {what}\b", report)
        counts[what] = int(found.group(1)) if found else 0
    want = {"nodes": sum(files.nodes.values()), "relationships": sum(files.relationships.values())}
    if counts != want:
        raise Neo4jServerError(f"the import tool created {counts} but {want} rows were written; see "
                               f"{files.folder / 'import.report'}")
    rows = want["nodes"] + want["relationships"]
    return {**counts, "seconds": round(seconds, 2), "rows_per_second": round(rows / max(seconds, 1e-9))}


def _terminate(pid: int, timeout: float = 60.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.2)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------- the CLI's daemon
def _state_file(data_dir: Path) -> Path:
    return data_dir / "server.json"


def default_data_dir() -> Path:
    return home_dir() / "neo4j"


def start(data_dir: Path | None = None, port: int | None = None, timeout: float = 180.0) -> ServerState:
    """Start a detached server (``kgrec neo4j start``) and record its state."""
    data_dir = data_dir or default_data_dir()
    current = status(data_dir)
    if current is not None:
        raise Neo4jServerError(f"a kgrec Neo4j is already running for {data_dir} at {current.uri} (pid {current.pid}); "
                               f"'kgrec neo4j stop' first")
    port = port or 7687
    if port_in_use(port):
        raise Neo4jServerError(f"port {port} on 127.0.0.1 is already in use; choose another with --port "
                               f"or stop what is listening there")
    _, state = spawn(data_dir, port=port, timeout=timeout)
    file = _state_file(data_dir)
    file.write_text(json.dumps(asdict(state)), encoding="utf-8")
    file.chmod(0o600)
    return state


def _is_our_server(pid: int, data_dir: str) -> bool:
    """Whether ``pid`` is the launcher serving ``data_dir``: a recorded pid may have been reused by any
    other process since (after a reboot, say), and that one must never be signalled."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:  # no /proc (macOS): fall back to liveness only
        return _alive(pid)
    return MAIN_CLASS.encode() in argv and any(a.startswith(str(data_dir).encode()) for a in argv)


def status(data_dir: Path | None = None) -> ServerState | None:
    """The running server's state, or ``None`` (a stale state file, whose pid is gone or now belongs to
    another program, is removed)."""
    file = _state_file(data_dir or default_data_dir())
    if not file.exists():
        return None
    state = ServerState(**json.loads(file.read_text(encoding="utf-8")))
    if not _alive(state.pid) or not _is_our_server(state.pid, state.data_dir):
        file.unlink(missing_ok=True)
        return None
    return state


def stop(data_dir: Path | None = None) -> ServerState | None:
    """Stop the server cleanly (SIGTERM, then SIGKILL after 60 s). Returns what was stopped."""
    data_dir = data_dir or default_data_dir()
    state = status(data_dir)
    if state is None:
        return None
    _terminate(state.pid)
    _state_file(data_dir).unlink(missing_ok=True)
    return state
