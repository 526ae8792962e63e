"""Training speed: seconds per epoch and peak memory of R-GCN / HGT vs PyG's LightGCN on the same demo
graph, at several sizes, on CPU and (when present) CUDA with bf16, full-graph and (with
``--neighbours``, when pyg-lib or torch-sparse is importable) neighbour-sampled R-GCN. Prints a
table, writes JSON. ``run_all.py --profile gpu`` runs it on CUDA:

    # ≈0.1M / 1M / 10M interactions
    .venv/bin/python benchmarks/training_speed.py --scales 6.5,65,650 --devices cuda,cpu

Each size's graph is built once (text features off: this measures message passing and the optimiser,
not the encoder). Each row runs one warm-up step, then times one full epoch of the kgrec trainer
(batch ``--batch-size`` training edges, 8,192 uniform negatives shared by the batch, the default).
After each epoch the trainer ranks every product for a sample of ``--val-users`` validation users,
as training does; the epoch time excludes that validation pass. Peak memory is per row: CUDA's peak
allocated bytes, or on CPU the process's peak resident set (VmHWM), reset before the row, so the
graph itself is included.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import time
from pathlib import Path

import torch

from bench_report import markdown_table, peak_rss_gib, reset_peak_rss, rss_gib, save
from kgrec.config import OptimConfig, TrainConfig
from kgrec.data.interactions import UserItems
from kgrec.loaders import load_catalog
from kgrec.models import build_model
from kgrec.train.loop import FullGraphBatches, train_embedding_model, uses_bf16
from kgrec.train.pipeline import neighbour_batches, prepare


def _peak_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return peak_rss_gib()


class _Limited:
    """The first ``steps`` batches of an epoch (for the warm-up)."""

    def __init__(self, batches, steps: int):
        self.batches, self.steps = batches, steps

    def __iter__(self):
        for i, b in enumerate(self.batches):
            if i >= self.steps:
                return
            yield b


def measure(prep, name: str, device: torch.device, cfg: TrainConfig, val: UserItems) -> dict:
    reset_peak_rss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = build_model(name, prep.data, cfg).to(device)
    batches = None
    if name == "lightgcn":
        model.set_graph(prep.train_users.to(device), prep.train_items.to(device))
        inputs: tuple = ()
    else:
        if cfg.optim.neighbours is not None:
            batches = neighbour_batches(prep, cfg, device)
        data = prep.data.to(device)
        inputs = (data.x_dict, data.edge_index_dict)
    # one training run at the first temperature of the grid (the grid's runs each cost the same)
    opt = dataclasses.replace(cfg.optim, epochs=1, patience=10**9, temperature=cfg.optim.temperature[:1])

    if batches is None:
        batches = FullGraphBatches(
            inputs,
            prep.train_users,
            prep.train_items,
            prep.train_index.n_items,
            prep.item_category,
            opt,
            torch.Generator().manual_seed(0),
        )

    def epoch(limit: int | None = None) -> float:
        """Seconds of one training epoch (the first ``limit`` steps of it when given)."""
        info = train_embedding_model(
            model,
            inputs,
            prep.train_users,
            prep.train_items,
            val,
            [prep.train_index],
            prep.train_index.n_items,
            prep.item_category,
            opt,
            0,
            device,
            batches=_Limited(batches, limit) if limit else batches,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return info["curve"][-1]["epoch_seconds"]

    epoch(limit=1)  # warm-up: one step (allocator, kernels, lazy imports) and one validation pass
    steps = -(-prep.train_users.numel() // opt.batch_size)
    return {"epoch_seconds": epoch(), "steps": steps, "peak_gib": _peak_gib(device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", default="6.5,65", help="demo scales (6.5 ≈ 0.1M, 65 ≈ 1M, 650 ≈ 10M interactions)")
    ap.add_argument("--models", default="rgcn,hgt,lightgcn")
    ap.add_argument("--devices", default="cpu")
    ap.add_argument("--batch-size", type=int, default=65536)
    ap.add_argument("--precisions", default="auto",
                    help="training arithmetic per row (kgrec's --precision): auto (bf16 on CUDA and on CPUs "
                         "with native bf16, else float32), fp32, bf16; comma-separated for several rows")
    ap.add_argument(
        "--neighbours", help="also time R-GCN on neighbour-sampled subgraphs with these fan-outs (e.g. 10,10)"
    )
    ap.add_argument("--val-users", type=int, default=10_000,
                    help="validation users ranked after each epoch (a sample: the timed epoch excludes validation, "
                         "this only bounds the run's wall time)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "training_speed.json"))
    args = ap.parse_args()
    imported_gib = rss_gib()  # the interpreter with torch, PyG and kgrec imported: part of every CPU row's peak
    rows = []
    variants = [(m, None) for m in args.models.split(",")]
    if args.neighbours:
        from kgrec.train.sampling import parse_fanout, require_neighbour_sampler

        require_neighbour_sampler()
        variants.append(("rgcn", parse_fanout(args.neighbours)))
    for scale in (float(s) for s in args.scales.split(",")):
        t0 = time.perf_counter()
        catalog = load_catalog("demo", scale=scale)
        base = TrainConfig(
            data="demo",
            scale=scale,
            text=False,
            sentiment=False,
            quiet=True,
            paths=False,
            optim=OptimConfig(batch_size=args.batch_size),
        )
        prep = prepare(base, catalog)
        val = prep.val_index.sample_users(args.val_users)
        n_edges, n_int = int(prep.data.num_edges), len(catalog.interactions)
        print(
            f"scale {scale:g}: {n_int:,} interactions, {n_edges:,} message-passing edges, "
            f"built in {time.perf_counter() - t0:.0f} s",
            flush=True,
        )
        del catalog
        for device in args.devices.split(","):
            if device == "cuda" and not torch.cuda.is_available():
                print("skip cuda: torch sees no GPU")
                continue
            for (name, fanout), precision in itertools.product(variants, args.precisions.split(",")):
                optim = dataclasses.replace(base.optim, neighbours=fanout, precision=precision)
                cfg = dataclasses.replace(base, optim=optim)
                r = measure(prep, name, torch.device(device), cfg, val)
                arith = "bf16" if uses_bf16(precision, torch.device(device)) else "fp32"
                label = name + (f" sampled {','.join(map(str, fanout))}" if fanout else "")
                row = {
                    "scale": scale,
                    "interactions": n_int,
                    "graph_edges": n_edges,
                    "model": label,
                    "device": device,
                    "precision": arith,
                    "batch_size": args.batch_size,
                    "imported_rss_gib": round(imported_gib, 2),
                    **r,
                }
                rows.append(row)
                print(
                    f"{n_int:>11,} interactions {label:>20} {device:>5} {arith}: {r['epoch_seconds']:8.2f} s/epoch "
                    f"({r['steps']} steps), peak {r['peak_gib']:.2f} GiB",
                    flush=True,
                )
                prep.data = prep.data.cpu()
    table = [
        [
            f"{r['interactions']:,}",
            f"{r['graph_edges']:,}",
            r["model"],
            r["device"],
            r["precision"],
            f"{r['epoch_seconds']:.2f}",
            r["steps"],
            f"{r['peak_gib']:.2f} GiB",
        ]
        for r in rows
    ]
    save(
        args.out,
        rows,
        "Training speed",
        f"Demo catalogs, text features off, batch {args.batch_size:,} training edges with 8,192 uniform negatives "
        "shared by the batch (the default); one warm-up step, then one timed epoch. Full-graph rows run message "
        "passing over the whole graph at every "
        'step; "sampled" rows over a neighbour-sampled subgraph around the batch. Peak memory per row: the '
        f"process's peak resident set on CPU (graph included; of it, {imported_gib:.2f} GiB is the interpreter with "
        "torch, PyG and kgrec imported, before any data), peak allocated on CUDA.\n\n"
        + markdown_table(
            ["interactions", "graph edges", "model", "device", "precision", "s/epoch", "steps", "peak memory"], table
        ),
    )


if __name__ == "__main__":
    main()
