"""The default job on a mid-size shop: ``python train.py --scale 11`` (the demo shop at about 180k
interactions, 16,500 users, 5,400 products) with every default, timed stage by stage from its log.

    .venv/bin/python benchmarks/midsize.py [--scale 11] [--timeout-min 110] [--render] [-- EXTRA TRAIN.PY FLAGS]

Each log line is stamped with the wall time since start, so a stage's time is read from when its
line arrives (the temperatures of the search train side by side and report together at its end);
the GNN's seconds per epoch are its training seconds over its epochs (validation passes included,
as a user waits for them). A run that passes ``--timeout-min`` is stopped, and the table shows the
stages it finished and that the whole run took longer. ``--render`` rewrites the table from the log
a run saved.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_report import markdown_table, save

REPO = Path(__file__).resolve().parents[1]
MODEL_LINE = re.compile(r"^\s*(\S+): test ndcg@10 ([0-9.]+)\s+(?:recall@10 [0-9.]+\s+\(([0-9.]+)s\)|weights)")
TEMPERATURE_LINE = re.compile(
    r"^\s*(\S+): temperature (\S+): validation ndcg@10 ([0-9.]+) \((\d+) epochs in ([0-9.]+)s\)"
    r"(?:; dropped: behind at epoch (\d+))?")
FEATURES_LINE = re.compile(r"^features in ([0-9.]+)s")
REFIT_LINE = re.compile(r"^refit of (\S+) on all (\d+) pairs in ([0-9.]+)s")


def run(scale: float, timeout_s: float, extra: list[str], out_dir: str) -> tuple[list[tuple[float, str]], bool]:
    """``train.py`` in a fresh process; returns (``[(seconds since start, line)]``, finished). The log is
    read on a thread, so the time limit also stops a stage that prints nothing for a long time."""
    cmd = [sys.executable, "train.py", "--scale", f"{scale:g}", "--out", out_dir, *extra]
    t0 = time.perf_counter()
    lines: list[tuple[float, str]] = []

    def read(stream) -> None:
        for line in stream:
            lines.append((time.perf_counter() - t0, line.rstrip()))
            print(f"[{lines[-1][0]:7.0f}s] {lines[-1][1]}", flush=True)

    with subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"}) as proc:
        reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reader.join()
            return lines, False
        reader.join()
    if proc.returncode:
        raise SystemExit(f"train.py failed with exit status {proc.returncode}")
    return lines, True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=11.0, help="demo scale (11 ≈ 180k interactions)")
    ap.add_argument("--timeout-min", type=float, default=110.0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "midsize.json"))
    ap.add_argument("--render", action="store_true",
                    help="rewrite OUT's table from the log it saved (no run; after a change to this table's format)")
    args, extra = ap.parse_known_args()
    extra = [a for a in extra if a != "--"]
    if args.render:
        saved = json.loads(Path(args.out).read_text(encoding="utf-8"))
        data = saved["data"]
        lines = [(at, line) for at, line in data["log"]]
        command = saved["command"].split("midsize.py", 1)[1].split()
        extra = command[command.index("--") + 1:] if "--" in command else []
        ours = command[:command.index("--")] if "--" in command else command
        limit = float(ours[ours.index("--timeout-min") + 1]) if "--timeout-min" in ours else args.timeout_min
        save_table(args.out, data["scale"], lines, data["finished"], extra, data.get("timeout_min", limit),
                   data["metrics"], command=saved["command"], finished_at=saved["finished"],
                   machine_info=saved["machine"])
        return
    with tempfile.TemporaryDirectory() as tmp:
        lines, finished = run(args.scale, args.timeout_min * 60, extra, tmp)
        metrics = json.loads((Path(tmp) / "metrics.json").read_text(encoding="utf-8")) if finished else {}
    save_table(args.out, args.scale, lines, finished, extra, args.timeout_min, metrics.get("models", {}))


def save_table(out: str, scale: float, lines: list[tuple[float, str]], finished: bool, extra: list[str],
               timeout_min: float, metrics: dict, **saved) -> None:
    """Writes OUT (.json with the log and metrics, .md with the stage table)."""
    total = lines[-1][0] if lines else 0.0
    rows, gnn = [], []
    for at, line in lines:
        if m := FEATURES_LINE.match(line):
            again = any(r[0].startswith("split, text") for r in rows)
            rows.append(["split, text embeddings, sentiment" + (" (for the refit)" if again else ""),
                         f"{float(m[1]):.0f}", f"{at:.0f}", ""])
        elif m := TEMPERATURE_LINE.match(line):
            epochs, seconds = int(m[4]), float(m[5])
            gnn.append(seconds / epochs)
            dropped = f"; dropped after epoch {m[6]} (behind)" if m[6] else ""
            rows.append([f"{m[1]} at temperature {m[2]}", f"{seconds:.0f}", f"{at:.0f}",
                         f"{epochs} epochs, {seconds / epochs:.1f} s/epoch, validation NDCG@10 {m[3]}{dropped}"])
        elif m := MODEL_LINE.match(line):
            rows.append([m[1], m[3] or "", f"{at:.0f}", f"test NDCG@10 {m[2]}"])
        elif m := REFIT_LINE.match(line):
            rows.append([f"refit of {m[1]} on all {m[2]} pairs", f"{float(m[3]):.0f}", f"{at:.0f}", ""])
    if finished:
        rows.append(["**whole run**", "", f"**{total:.0f}**", f"{total / 60:.1f} min"])
    else:
        rows.append(["**whole run**", "", f"> {total:.0f}", f"stopped after {timeout_min:g} min, unfinished"])
    split = next((line for _, line in lines if line.startswith("split ")), "")
    save(out, {"scale": scale, "finished": finished, "seconds": total, "log": lines, "timeout_min": timeout_min,
               "gnn_seconds_per_epoch": gnn, "metrics": metrics},
         f"`python train.py` on a mid-size shop (demo scale {scale:g})",
         f"`python train.py --scale {scale:g}` {' '.join(extra)} with every other default ({split}). "
         "Seconds: the stage's own time as the log reports it; 'done at': seconds since the start when its "
         "line arrived (the temperature search reports its candidates together when it ends).\n\n"
         + markdown_table(["stage", "seconds", "done at", "detail"], rows), **saved)


if __name__ == "__main__":
    main()
