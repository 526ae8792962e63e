"""Run every benchmark, one after another, and rewrite the numbers in ``benchmarks/README.md``.

    .venv/bin/python benchmarks/run_all.py                  # every step of the default profile
    .venv/bin/python benchmarks/run_all.py --list           # the steps and their commands
    .venv/bin/python benchmarks/run_all.py --only serving,refresh
    .venv/bin/python benchmarks/run_all.py --render         # only rewrite README.md from results/*.md

Each step is one benchmark script in its own process (so one step's memory cannot inflate the next
one's numbers), run from the repository root. Each script writes ``results/NAME.json`` and
``results/NAME.md`` (its table, the command and the finish time; see ``bench_report.py``). At the end
the README's block between the ``results`` markers is replaced by those ``.md`` files, in step order,
so every number there is one the scripts wrote. A failed step is reported, the others still run,
and the exit status is 1; its old ``.md`` (if any) stays, with its own older finish time on it.

``--profile gpu`` is the prepared GPU run, its own short list (one H200: about 6 minutes; the device
machine has torch and PyG, so the install is ``pip install --no-deps --no-build-isolation -e .``)::

    pip install -e . && python benchmarks/run_all.py --profile gpu

It times R-GCN, HGT and LightGCN epochs on CUDA (bf16 autocast) at 1M interactions, and R-GCN and
LightGCN at 10M; its tables join the default profile's in the README.
"""
from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "datasets"
RUNS = "/tmp/kgrec-bench"
MAGAZINE_RUN = f"{RUNS}/magazine/rgcn/0"  # written by the quality step, used by faithfulness and serving
BEGIN, END = "<!-- results:begin (written by run_all.py) -->", "<!-- results:end -->"


@dataclass(frozen=True)
class Step:
    name: str  # results/NAME.json and .md
    args: tuple[str, ...]  # the script and its arguments
    needs: str = ""  # a dataset it needs that may be missing: "magazine" or "scientific"

    @property
    def command(self) -> str:
        """The step as a shell command from the repository root."""
        return f"python {shlex.join(['benchmarks/' + self.args[0], *self.args[1:]])}"


def _steps(profile: str) -> list[Step]:
    res = lambda name: ("--out", f"benchmarks/results/{name}.json")  # noqa: E731
    variant_data = {"magazine": (str(SHARED / "amazon-magazine-2018"), "magazine"),
                    "scientific": (str(SHARED / "amazon-scientific-2018"), "scientific"), "demo": ("demo", "")}

    def levers(group: str, only: str, back: int = 0, **seeds: str) -> list[Step]:
        """``gnn_variants_GROUP_DATASET`` steps: the ``only`` variants, the GNN alone and the served blend
        (no baselines), for each dataset given with its seeds; ``back`` steps back (``--back``) when not 0."""
        steps_back = ("--back", str(back)) if back else ()
        return [Step(f"gnn_variants_{group}_{name}",
                     ("gnn_variants.py", variant_data[name][0], "--seeds", s, "--only", only, "--baselines", "",
                      "--paths", *steps_back, *res(f"gnn_variants_{group}_{name}")), needs=variant_data[name][1])
                for name, s in seeds.items()]

    def protocols_back() -> list[Step]:
        """``history_protocols_backN[_tower][_DATASET]``: ``history_protocols.py --back N`` with the defaults
        and with the recent-history tower (GNN and EASE^R rows only), magazine and the demo shop 3 seeds,
        scientific seed 0 (about 7 min a run there)."""
        tower = ("--config", '{"history_tower": 1}', "--models", "rgcn,ease")
        runs = [(1, "magazine", "0,1,2"), (1, "scientific", "0"),
                (2, "magazine", "0,1,2"), (2, "scientific", "0"), (2, "demo", "0,1,2")]
        steps = []
        for back, ds, seeds in runs:
            for extra, suffix in (((), ""), (tower, "_tower")):
                if back == 1 and ds == "scientific" and extra:
                    continue
                models = ("--models", "rgcn,ease") if ds == "demo" and not extra else ()
                name = f"history_protocols_back{back}{suffix}" + ("" if ds == "magazine" else f"_{ds}")
                steps.append(Step(name, ("history_protocols.py", "--datasets", ds, "--seeds", seeds,
                                         "--back", str(back), *extra, *models, *res(name)),
                                  needs=variant_data[ds][1]))
        return steps + [Step("history_protocols_tower", ("history_protocols.py", "--datasets", "magazine", "--seeds",
                                                         "0,1,2", *tower, *res("history_protocols_tower")),
                             needs="magazine")]
    if profile == "gpu":
        return [
            Step("training_speed_gpu", ("training_speed.py", "--scales", "65", "--models", "rgcn,hgt,lightgcn",
                                        "--devices", "cuda", *res("training_speed_gpu"))),
            Step("training_speed_gpu_10m", ("training_speed.py", "--scales", "650", "--models", "rgcn,lightgcn",
                                            "--devices", "cuda", *res("training_speed_gpu_10m"))),
        ]
    # 0.1M interactions: every model; 1M: R-GCN in float32 (the CPU default) and bf16 (HGT is ~1.4× R-GCN)
    speed = ("--scales", "6.5", "--devices", "cpu")
    large = ("--scales", "65", "--models", "rgcn", "--precisions", "fp32,bf16", "--devices", "cpu")
    sampled: tuple[str, ...] = ()
    if _sampler_available():  # the neighbour-sampled R-GCN rows need pyg-lib or torch-sparse
        sampled = ("--neighbours", "10,10")
    return [
        Step("quality", ("quality.py", "--datasets", "magazine,demo", "--models", "rgcn", "--seeds",
                         "0,1,2", *sampled, "--runs", RUNS, *res("quality"))),
        # scientific's LightGCN (its paper's recipe: up to 1,000 epochs, patience 200) is one seed, in its own
        # table: three seeds of it would double the step, and it is below EASE^R there (reference harness 0.0390)
        Step("quality_scientific", ("quality.py", "--datasets", "scientific", "--models", "rgcn", "--seeds", "0,1,2",
                                    "--baselines", "popularity,trending,itemknn,ease", "--runs", RUNS,
                                    *res("quality_scientific")), needs="scientific"),
        Step("quality_scientific_lightgcn", ("quality.py", "--datasets", "scientific", "--models", "rgcn", "--seeds",
                                             "0", "--baselines", "lightgcn", "--runs", RUNS + "-lightgcn",
                                             *res("quality_scientific_lightgcn")), needs="scientific"),
        # --max-steps 64 → 32 (the default since the eighteenth stop; quality_scientific's table was then at 64,
        # its re-run of the twenty-first stop is at 32): scientific is the one public set it changes (41,858
        # training pairs: batch 1,024 → 1,309)
        Step("quality_scientific_steps32", ("quality.py", "--datasets", "scientific", "--models", "rgcn", "--seeds",
                                            "0,1,2", "--baselines", "ease", "--train-flags", "--max-steps 32",
                                            "--runs", RUNS, *res("quality_scientific_steps32")), needs="scientific"),
        Step("gnn_variants_amazon-magazine-2018", ("gnn_variants.py", str(SHARED / "amazon-magazine-2018"), "--seed",
                                                   "0", *res("gnn_variants_amazon-magazine-2018")), needs="magazine"),
        Step("gnn_variants_amazon-scientific-2018", ("gnn_variants.py", str(SHARED / "amazon-scientific-2018"),
                                                     "--seed", "0", *res("gnn_variants_amazon-scientific-2018")),
             needs="scientific"),
        Step("gnn_variants_support_magazine", ("gnn_variants.py", str(SHARED / "amazon-magazine-2018"), "--seed", "0",
                                               "--only", "default,support1,support2,no-kg,no-sequence",
                                               "--baselines", "ease", *res("gnn_variants_support_magazine")),
             needs="magazine"),
        # recently_chose's count (none, 1, 3, 5), the GNN alone and the served blend; scientific's
        # seed 0 only (about 3.5 min a row there)
        *levers("recent", "default,no-recent,recent1,recent5", magazine="0,1,2", scientific="0", demo="0,1,2"),
        # Adam weight decay on the GNN: no gain on magazine's validation (not a default)
        Step("gnn_variants_wd_magazine", ("gnn_variants.py", str(SHARED / "amazon-magazine-2018"), "--seeds", "0,1,2",
                                          "--only", "default,wd1e-6,wd1e-5,wd1e-4", "--baselines", "",
                                          *res("gnn_variants_wd_magazine")), needs="magazine"),
        # users without id embeddings, input dropout, one layer (eighteenth stop): not defaults; the user ids
        # lever on all three sets, the others on magazine
        *levers("users", "default,no-user-ids,dropout0.1,layers1", magazine="0,1,2"),
        *levers("users", "default,no-user-ids", demo="0,1,2", scientific="0,1,2"),
        # the recent-history tower (--history-tower 1, eighteenth stop): not a default; scientific runs the tower
        # row only (its default row is gnn_variants_users_scientific's)
        *levers("tower", "default,history-tower", magazine="0,1,2", demo="0,1,2"),
        *levers("tower", "history-tower", scientific="0,1,2"),
        # the temperature search's evidence rule (twentieth stop): the defaults on two sets' own splits, and on
        # magazine two steps back, where the rung had stopped the better temperature
        *levers("search", "default", magazine="0,1,2", demo="0,1,2"),
        *levers("back2", "default", back=2, magazine="0,1,2"),
        # the HGT encoder in place of the R-GCN, every other default kept (twenty-first stop): two steps back on
        # magazine, the lab whose test pairs chose no default
        *levers("hgt_back2", "default,hgt", back=2, magazine="0,1,2"),
        Step("tuning", ("tuning.py", "--datasets", "magazine,demo", "--trials", "25", "--seeds", "0",
                        *res("tuning")), needs="magazine"),
        Step("served", ("served.py", "--datasets", "demo,magazine,scientific", "--seeds", "0", *res("served"))),
        # how the blend's path weights are chosen: nested CV over the validation users
        Step("blend_weights_loo", ("blend_weights.py", "--datasets", "magazine,demo,scientific", "--seeds", "0",
                                   "--protocol", "loo", *res("blend_weights_loo")), needs="scientific"),
        # what the ease path relation adds, by nested CV over the validation users of the quality runs' folders
        Step("path_ablation", ("path_ablation.py", *(f"{RUNS}/{d}/rgcn/{s}" for d in ("magazine", "demo", "scientific")
                                                   for s in (0, 1, 2)), "--drop", "ease", *res("path_ablation")),
             needs="scientific"),
        Step("blend_weights_cut", ("blend_weights.py", "--datasets", "magazine", "--seeds", "0,1",
                                   "--protocol", "cut", *res("blend_weights_cut")), needs="magazine"),
        Step("history_protocols", ("history_protocols.py", "--datasets", "magazine", "--seeds", "0,1,2",
                                   *res("history_protocols")), needs="magazine"),
        Step("history_protocols_scientific", ("history_protocols.py", "--datasets", "scientific", "--seeds", "0",
                                              *res("history_protocols_scientific")), needs="scientific"),
        # the same protocols N steps back, on the exports without each user's last N pairs (no test pair is read;
        # at 2 the lab's test pairs are training pairs, on which no default was chosen), with and without the tower
        *protocols_back(),
        Step("explain_faithfulness", ("explain_faithfulness.py", MAGAZINE_RUN, "--pairs", "100",
                                      *res("explain_faithfulness")), needs="magazine"),
        Step("serving", ("serving.py", "--run", MAGAZINE_RUN, *res("serving")), needs="magazine"),
        Step("ann", ("ann.py", "--products", "100000,1000000", "--run", MAGAZINE_RUN, *res("ann")),
             needs="magazine"),
        Step("trending", ("trending.py", "--datasets", "demo,magazine", *res("trending")), needs="magazine"),
        Step("events", ("events.py", "--requests", "3000", "--threads", "4", *res("events"))),
        Step("soak", ("soak.py", "--seconds", "600", "--threads", "8", *res("soak"))),
        Step("multilingual", ("multilingual.py", "--reviews", "5500", "--scale", "0.5", *res("multilingual")),
             needs="zh"),
        Step("quickstart", ("quickstart.py", *res("quickstart"))),
        Step("midsize", ("midsize.py", "--scale", "11", *res("midsize"))),
        Step("text_encoding", ("text_encoding.py", "--limit", "500", *res("text_encoding"))),
        Step("catalog_load", ("catalog_load.py", "--scale", "65", *res("catalog_load"))),
        Step("neo4j_import", ("neo4j_import.py", "--scale", "65", "--naive-sample", "2000", *res("neo4j_import"))),
        Step("ddp", ("ddp.py", *res("ddp"))),
        Step("cold_start", ("cold_start.py", "--datasets", "demo,magazine", "--seeds", "0", *res("cold_start"))),
        Step("refresh", ("refresh.py", "--data", "demo", "--seeds", "0,1", *res("refresh"))),
        Step("training_speed", ("training_speed.py", *speed, *sampled, *res("training_speed"))),
        Step("training_speed_large", ("training_speed.py", *large, *sampled, *res("training_speed_large"))),
        Step("pipeline_scale_650", ("pipeline_scale.py", "--scale", "650", *res("pipeline_scale_650"))),
        # the served model's quality at 1.1M interactions (the default batch, one temperature: about 1.5 h on 2
        # cores; EASE^R is not fitted above 16,000 products, LightGCN's paper recipe would take hours here)
        Step("quality_demo_1m", ("quality.py", "--datasets", "demo", "--scale", "65", "--models", "rgcn", "--seeds",
                                 "0", "--baselines", "popularity,trending,itemknn", "--train-flags",
                                 "--temperature 0.4", "--runs", RUNS, *res("quality_demo_1m"))),
    ]


def _sampler_available() -> bool:
    from kgrec.train.sampling import neighbour_sampler_available

    return neighbour_sampler_available()


def _missing(need: str) -> str | None:
    """Why a step cannot run here, or None."""
    if need == "magazine" and not (SHARED / "amazon-magazine-2018").is_dir():
        return f"{SHARED / 'amazon-magazine-2018'} is absent"
    if need == "scientific" and not (SHARED / "amazon-scientific-2018").is_dir():
        return f"{SHARED / 'amazon-scientific-2018'} is absent"
    if need == "zh" and not (SHARED / "zh-online-shopping-reviews").is_dir():
        return f"{SHARED / 'zh-online-shopping-reviews'} is absent"
    return None


def render(steps: list[Step]) -> list[str]:
    """Replace the README's results block with the run summaries and ``results/NAME.md`` of every step, in
    order; returns the steps without results."""
    readme = HERE / "README.md"
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme} lacks the markers {BEGIN!r} … {END!r}")
    parts, missing = [], []
    for summary in (HERE / "results" / "run_all.md", HERE / "results" / "run_all_gpu.md"):
        if summary.is_file():
            parts.append(summary.read_text(encoding="utf-8").strip())
    for step in steps:
        md = HERE / "results" / f"{step.name}.md"
        if md.is_file():
            parts.append(md.read_text(encoding="utf-8").strip())
        else:
            missing.append(step.name)
    block = "\n\n".join(parts) if parts else "(no results yet: run `benchmarks/run_all.py`)"
    new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: f"{BEGIN}\n\n{block}\n\n{END}", text,
                 flags=re.S)
    readme.write_text(new, encoding="utf-8")
    return missing


def _write_summary(started: datetime, done: list[list], partial: bool, finished: bool, profile: str) -> None:
    from bench_report import command_line, describe, machine, markdown_table

    total = sum(float(d[2].replace(",", "")) for d in done if d[2])
    what = "some steps (`--only`/`--skip`); the other tables below are from earlier runs, see their dates" \
        if partial else "every step"
    if not finished:
        what += f" (in progress or interrupted: {len(done)} steps done)"
    name, title = ("run_all_gpu", "The last `run_all.py --profile gpu` run") if profile == "gpu" else \
        ("run_all", "The last `run_all.py` run")
    (HERE / "results" / f"{name}.md").write_text(
        f"### {title}\n\n`{command_line()}` ran {what}, started "
        f"{started.strftime('%Y-%m-%d %H:%M UTC')}, {total / 60:.0f} min in all ({describe(machine())}).\n\n"
        + markdown_table(["step", "outcome", "seconds"], done) + "\n", encoding="utf-8")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=["default", "gpu"], default="default")
    ap.add_argument("--only", help="comma-separated step names")
    ap.add_argument("--skip", help="comma-separated step names")
    ap.add_argument("--list", action="store_true", help="print the steps and exit")
    ap.add_argument("--render", action="store_true", help="only rewrite README.md from results/*.md")
    args = ap.parse_args()
    steps = _steps(args.profile)
    names = {s.name for s in steps}
    for opt in (args.only, args.skip):
        unknown = set((opt or "").split(",")) - names - {""}
        if unknown:
            raise SystemExit(f"unknown steps {sorted(unknown)}; the steps are {', '.join(s.name for s in steps)}")
    chosen = [s for s in steps if (not args.only or s.name in args.only.split(","))
              and s.name not in (args.skip or "").split(",")]
    if args.list:
        for s in chosen:
            print(f"{s.name:<22} {s.command}")
        return 0
    failed: list[str] = []
    if not args.render:
        started = datetime.now(timezone.utc)
        done = []  # [step, outcome, seconds]
        for i, step in enumerate(chosen, 1):
            why = _missing(step.needs)
            if why:
                print(f"[{i}/{len(chosen)}] {step.name}: skipped, {why}", flush=True)
                failed.append(f"{step.name} (skipped: {why})")
                done.append([f"`{step.name}`", f"skipped: {why}", ""])
                _write_summary(started, done, len(chosen) < len(steps), i == len(chosen), args.profile)
                continue
            cmd = [sys.executable, str(HERE / step.args[0]), *step.args[1:]]
            print(f"[{i}/{len(chosen)}] {step.name}: {step.command}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(cmd, cwd=REPO).returncode
            seconds = time.perf_counter() - t0
            print(f"[{i}/{len(chosen)}] {step.name}: exit {rc} after {seconds:.0f} s", flush=True)
            done.append([f"`{step.name}`", "ok" if rc == 0 else f"**failed (exit {rc})**", f"{seconds:,.0f}"])
            if rc != 0:
                failed.append(f"{step.name} (exit {rc})")
            _write_summary(started, done, len(chosen) < len(steps), i == len(chosen), args.profile)
    missing = render(_steps("default") + _steps("gpu"))
    print(f"rewrote {HERE / 'README.md'}" + (f"; no results yet for {', '.join(missing)}" if missing else ""))
    if failed:
        print("not measured this time: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
