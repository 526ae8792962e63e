"""Incremental refresh: new interactions, users and products without a full retrain.

``kgrec refresh RUN_DIR --data NEW_EXPORT`` rebuilds features and the graph for the new export (the
text cache makes known texts free), builds the run's GNN for the new node counts, **warm-starts**
it from the old checkpoint — every weight whose shape is unchanged is copied, and id embeddings and
product biases are copied row by row through the catalog ids, so known users and products keep
their vectors while new ones start from the model's usual initialisation (the fold-in) — and then
fine-tunes for a few epochs with early stopping.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from kgrec.config import GNN_MODELS, REFRESH_EPOCHS, REFRESH_PATIENCE, TrainConfig
from kgrec.data.catalog import Catalog
from kgrec.errors import RunError
from kgrec.serve.recommend import Recommender


def _row_owner(key: str) -> str | None:
    """The node type whose catalog ids index the rows of parameter ``key`` (None: not id-indexed)."""
    if key == "item_bias":
        return "product"
    parts = key.split(".")
    if len(parts) >= 4 and parts[-4:-2] == ["inputs", "emb"] and parts[-1] == "weight":
        return parts[-2]
    return None


def warm_start(model: torch.nn.Module, old_state: dict, old_ids: dict[str, list[str]],
               new_ids: dict[str, list[str]]) -> dict:
    """Copy ``old_state`` into ``model`` where it fits; returns counts of what was copied and what not."""
    state = model.state_dict()
    report = {"copied": 0, "row_mapped": {}, "kept_initial": []}
    with torch.no_grad():
        for key, new in state.items():
            old = old_state.get(key)
            owner = _row_owner(key)
            if owner is not None and old is not None and old.shape[1:] == new.shape[1:]:
                pos = {v: i for i, v in enumerate(old_ids.get(owner, []))}
                src = torch.tensor([pos.get(v, -1) for v in new_ids[owner]], dtype=torch.long)
                known = src >= 0
                new[known] = old[src[known]].to(new.dtype)
                report["row_mapped"][key] = {"known": int(known.sum()), "new": int((~known).sum())}
            elif old is not None and old.shape == new.shape:
                new.copy_(old)
                report["copied"] += 1
            else:
                report["kept_initial"].append(key)
    model.load_state_dict(state)
    return report


def default_out(run_dir: str | Path) -> Path:
    """Where a refresh writes unless told: a new sibling folder, so the run being served stays intact."""
    run = Path(run_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return run.with_name(f"{run.name}-refresh-{stamp}")


def refresh_config(rec: Recommender, data: str, out: str | Path, epochs: int = REFRESH_EPOCHS,
                   patience: int = REFRESH_PATIENCE, format: str | None = None, mapping: str | None = None,
                   quiet: bool = False) -> TrainConfig:
    """The old run's configuration pointed at the new export, with a short fine-tuning schedule."""
    if rec.model_name not in GNN_MODELS:
        raise RunError(f"refresh warm-starts a GNN run (rgcn or hgt); this run's model is {rec.model_name}: "
                       f"retrain it with 'kgrec train' (baselines fit in seconds)")
    cfg = rec.config
    return replace(cfg, data=data, neo4j=None, format=format, mapping=mapping, out=str(out), baselines=(),
                   show_users=0, quiet=quiet, optim=replace(cfg.optim, epochs=epochs, patience=patience))


def refresh_run(run_dir: str | Path, data: str, out: str | Path | None = None, epochs: int = REFRESH_EPOCHS,
                patience: int = REFRESH_PATIENCE, format: str | None = None, mapping: str | None = None,
                quiet: bool = False, catalog=None, in_place: bool = False, events: bool = False) -> dict:
    """Refresh ``run_dir`` with the export ``data`` (the whole current export: old and new rows).

    Writes a new run folder (``out``; default :func:`default_out`, or ``run_dir`` itself with
    ``in_place``, replaced atomically) and returns its metrics, with a ``refresh`` entry: new
    users/products/interactions and what the warm start copied. ``events``: the interactions ``kgrec serve``
    logged for ``run_dir`` (:mod:`kgrec.serve.events`) join the export's.
    """
    from kgrec.train.pipeline import run_training

    old = Recommender.load(run_dir)
    if out is None:
        out = run_dir if in_place else default_out(run_dir)
    cfg = refresh_config(old, data, out, epochs, patience, format, mapping, quiet)
    folded = 0
    if events:
        from kgrec.serve.events import events_frame

        logged = events_frame(run_dir)
        if logged.empty:
            raise RunError(f"{run_dir}: no logged events to fold in (nothing in {run_dir}.state/events.jsonl)")
        from kgrec.train.pipeline import load_source

        catalog = catalog if catalog is not None else load_source(cfg)
        tables = dict(catalog.tables)
        tables["interactions"] = pd.concat([catalog.interactions, logged], ignore_index=True)
        tables["users"] = pd.concat([catalog.users, pd.DataFrame({"user_id": sorted(
            set(logged["user_id"]) - set(catalog.users["user_id"]))})], ignore_index=True)
        catalog = Catalog.from_tables(tables, catalog.report, source=f"{catalog.source} + {len(logged)} logged events",
                                      synthetic=catalog.synthetic)
        folded = len(logged)
    old_state = old.ckpt["state_dict"]
    old_ids = old.ckpt["id_maps"]
    old_seen = int(old.ckpt["seen_users"].numel())
    holder: dict = {}

    def init(model, prep) -> None:
        holder["warm"] = warm_start(model, old_state, old_ids, prep.id_maps.to_dict())
        holder["new"] = {t: len(set(prep.id_maps.ids[t]) - set(old_ids.get(t, []))) for t in ("user", "product")}
        holder["interactions"] = len(prep.catalog.interactions)

    def annotate(metrics: dict) -> None:
        metrics["refresh"] = {"from": str(run_dir), "out": str(out), "new_users": holder["new"]["user"],
                              "new_products": holder["new"]["product"], "interactions": holder["interactions"],
                              "old_run_pairs": old_seen, "warm_start": holder["warm"], "events": folded}

    return run_training(cfg, catalog, init=init, annotate=annotate)
