"""Training speed: seconds per epoch of R-GCN / HGT vs PyG's LightGCN on the same demo graph, at
several sizes, on CPU and (when present) CUDA with bf16, with peak memory. Prints a table, writes JSON.
This is also the prepared GPU script:

    .venv/bin/python benchmarks/training_speed.py --scales 65,650 --devices cuda,cpu --epochs 2   # ≈1M / 10M edges

Each measurement builds the graph once (text features off: this measures message passing and the
optimiser, not the encoder), then times ``--epochs`` full epochs after one warm-up epoch.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import resource
from pathlib import Path

import torch

from kgrec.loaders import load_catalog
from kgrec.pipeline import TrainConfig, build_model, prepare
from kgrec.training import OptimConfig, train_embedding_model


def measure(prep, name: str, device: torch.device, epochs: int, cfg: TrainConfig) -> dict:
    model = build_model(name, prep, cfg).to(device)
    if name == "lightgcn":
        model.set_graph(prep.train_users.to(device), prep.train_items.to(device))
        inputs: tuple = ()
    else:
        data = prep.data.to(device)
        inputs = (data.x_dict, data.edge_index_dict)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    opt = dataclasses.replace(cfg.optim, epochs=1, patience=10**9)
    train_embedding_model(model, inputs, prep.train_users, prep.train_items, prep.val_index, [prep.train_index],
                          prep.train_index.n_items, prep.item_category, opt, 0, device)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(epochs):
        info = train_embedding_model(model, inputs, prep.train_users, prep.train_items, prep.val_index,
                                     [prep.train_index], prep.train_index.n_items, prep.item_category, opt, 0, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(info["curve"][-1]["epoch_seconds"])
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"epoch_seconds": sum(times) / len(times), "peak_gib": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="6.5,65", help="demo scales (65 ≈ 1M interactions)")
    ap.add_argument("--models", default="rgcn,hgt,lightgcn")
    ap.add_argument("--devices", default="cpu")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=65536)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "training_speed.json"))
    args = ap.parse_args()
    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        cfg = TrainConfig(data="demo", scale=scale, text=False, sentiment=False, quiet=True,
                          optim=OptimConfig(batch_size=args.batch_size))
        catalog = load_catalog("demo", scale=scale)
        prep = prepare(cfg, catalog)
        n_edges = int(prep.data.num_edges)
        for device in args.devices.split(","):
            if device == "cuda" and not torch.cuda.is_available():
                print("skip cuda: torch sees no GPU")
                continue
            for name in args.models.split(","):
                r = measure(prep, name, torch.device(device), args.epochs, cfg)
                row = {"scale": scale, "interactions": len(catalog.interactions), "graph_edges": n_edges,
                       "model": name, "device": device, **r}
                rows.append(row)
                print(f"{scale:>6} {len(catalog.interactions):>10,} int {n_edges:>11,} edges {name:>9} {device:>5}: "
                      f"{r['epoch_seconds']:8.2f} s/epoch  peak {r['peak_gib']:.2f} GiB", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
