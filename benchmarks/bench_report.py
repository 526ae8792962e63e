"""What every benchmark script does with its numbers: print a markdown table and save it.

``save(out, data, title, markdown)`` writes ``out`` (JSON: the command line, the finish time, the
machine and ``data``) and ``out`` with a ``.md`` suffix: the title, the same provenance line and the
markdown. ``run_all.py`` pastes the ``.md`` files into ``benchmarks/README.md``, so the numbers there
are exactly the ones the last run wrote.
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
# the dev sets: the built-in demo shop and the public exports in ../shared/datasets (not in the repository)
DATASETS = {
    "demo": "demo",
    "magazine": str(SHARED / "amazon-magazine-2018"),
    "scientific": str(SHARED / "amazon-scientific-2018"),
}


def dataset_source(name: str) -> str | None:
    """The ``--data`` source of dev set ``name``, or ``None`` (with a printed skip) when its folder in
    ``../shared/datasets`` is absent."""
    source = DATASETS[name]
    if name != "demo" and not Path(source).is_dir():
        print(f"skip {name}: {source} is absent")
        return None
    return source


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table; cells are used as given (format numbers before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def reset_peak_rss() -> None:
    """Reset this process's peak resident set (VmHWM), on Linux (writing 5 to clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _status_gib(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``, in kB there), in GiB; NaN if absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def peak_rss_gib() -> float:
    """This process's peak resident set since the last :func:`reset_peak_rss`, in GiB (NaN off Linux)."""
    return _status_gib("VmHWM")


def rss_gib() -> float:
    """This process's resident set now, in GiB (NaN off Linux)."""
    return _status_gib("VmRSS")


def latency_ms(ms) -> dict[str, float]:
    """``{"p50 ms", "p99 ms"}`` of latencies in milliseconds, rounded to 0.1 ms."""
    import numpy as np

    return {"p50 ms": round(float(np.percentile(ms, 50)), 1), "p99 ms": round(float(np.percentile(ms, 99)), 1)}


def machine() -> dict:
    """CPU cores, memory, GPU and library versions of this process's machine."""
    import torch
    import torch_geometric

    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    sampler = None  # what PyG's neighbour sampling runs on, when anything
    for module in ("pyg_lib", "torch_sparse"):
        try:
            sampler = f"{module.replace('_', '-')} {__import__(module).__version__}"
            break
        except ImportError:
            continue
    return {
        "neighbour_sampler": sampler,
        "cpus": os.cpu_count(),
        "memory_gib": mem_gib,
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }


def describe(m: dict) -> str:
    gpu = m["gpu"] or "no GPU"
    threads = f", OMP_NUM_THREADS={m['omp_num_threads']}" if m.get("omp_num_threads") else ""
    sampler = f", {m['neighbour_sampler']}" if m.get("neighbour_sampler") else ""
    return (
        f"{m['cpus']} CPU cores, {m['memory_gib']} GiB, {gpu}, torch {m['torch']}, "
        f"PyG {m['torch_geometric']}{sampler}{threads}"
    )


def command_line() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def save(out: str | Path, data: object, title: str, markdown: str, command: str | None = None,
         finished_at: str | None = None, machine_info: dict | None = None) -> None:
    """Print ``markdown`` and write ``out`` (JSON) and ``out.md`` (title, provenance, markdown). A table
    re-rendered from saved data passes the provenance it was measured with (command, finish time, machine)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    m = machine_info or machine()
    finished = finished_at or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cmd = command or command_line()
    out.write_text(
        json.dumps({"command": cmd, "finished": finished, "machine": m, "data": data}, indent=2, default=float),
        encoding="utf-8",
    )
    text = f"### {title}\n\n`{cmd}`, finished {finished} ({describe(m)}).\n\n{markdown.strip()}\n"
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    print(f"\n{text}\nwrote {out} and {out.with_suffix('.md').name}", flush=True)
