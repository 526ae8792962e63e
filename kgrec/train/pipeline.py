"""The whole path behind ``python train.py`` / ``kgrec train``:
catalog → split → features → HeteroData → chosen model + baselines → metrics, checkpoint, report."""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from kgrec.config import GNN_MODELS, TRAINED_MODELS, TrainConfig
from kgrec.data.catalog import Catalog
from kgrec.data.graph import build_graph
from kgrec.data.interactions import UserItems
from kgrec.data.split import split_interactions
from kgrec.features.build import compute_features, product_texts
from kgrec.features.text import TextEncoder, choose_encoder
from kgrec.models import build_model
from kgrec.models.baselines import EASE
from kgrec.runtime import keep_freed_memory
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.loop import (
    EmbeddingTrainer,
    broadcast_float,
    dist_info,
    embeddings,
    paired_z,
    resolve_device,
    scaled_to,
    seed_everything,
    uses_bf16,
)


def load_source(cfg: TrainConfig) -> Catalog:
    if cfg.neo4j is not None:
        from kgrec.neo4j.connection import resolve_config
        from kgrec.neo4j.readback import read_catalog

        return read_catalog(resolve_config(cfg.neo4j or None))
    from kgrec.loaders import load_catalog

    return load_catalog(cfg.data, format=cfg.format, mapping=cfg.mapping, scale=cfg.scale, seed=cfg.seed,
                        encoding=cfg.encoding, locale=cfg.locale)


def resolve_encoder(cfg: TrainConfig, catalog: Catalog) -> TrainConfig:
    """``cfg`` with a concrete text encoder: ``auto`` becomes the model chosen for this catalog's product
    texts (:func:`kgrec.features.text.choose_encoder`), logged and kept in ``config.json``."""
    if cfg.encoder_choice is not None or not (cfg.text or cfg.sentiment):
        return cfg
    name, why = choose_encoder(cfg.encoder, product_texts(catalog))
    _log(cfg, f"text encoder: {name} ({why})")
    return replace(cfg, encoder=name, encoder_choice=why)


def _log(cfg: TrainConfig, msg: str) -> None:
    if not cfg.quiet:
        print(msg, flush=True)


@dataclass
class Prepared:
    """Everything the models are trained and evaluated on."""

    catalog: Catalog
    data: object  # HeteroData
    id_maps: object
    train_users: torch.Tensor
    train_items: torch.Tensor
    train_times: torch.Tensor  # [len(train_index)] epoch seconds of train_index's pairs (NaN where unknown)
    train_index: UserItems
    val_index: UserItems
    val_select: UserItems  # what choices are made on: val_index's pairs of at most cfg.selection_users users
    test_index: UserItems
    item_category: torch.Tensor
    split_summary: dict
    sentiment: dict
    feature_norm: dict  # {node type: (mean [C], std [C])} of the standardised statistic columns
    product_text: torch.Tensor | None  # [I, D] product text embeddings (None without text)


def prepare(cfg: TrainConfig, catalog: Catalog | None = None, split: str | None = None) -> Prepared:
    """Split, features and graph for ``cfg``; ``split="all"`` holds nothing out (the serving refit)."""
    catalog = catalog or load_source(cfg)
    cfg = resolve_encoder(cfg, catalog)  # 'auto' → the encoder for this catalog (run_training did it already)
    split = split_interactions(catalog.interactions, split or cfg.split, seed=cfg.seed)
    _log(cfg, f"split {split.strategy}: {split.summary()}")
    need_encoder = cfg.text or cfg.sentiment
    encoder = TextEncoder(cfg.encoder, device=cfg.device, progress=not cfg.quiet) if need_encoder else None
    t0 = time.perf_counter()
    feats = compute_features(catalog, split.train_rows, encoder, use_text=cfg.text, use_sentiment=cfg.sentiment,
                             seed=cfg.seed, sentiment_method=cfg.sentiment_method, progress=not cfg.quiet)
    _log(cfg, f"features in {time.perf_counter() - t0:.1f}s (sentiment: {feats.sentiment.get('enabled')})")
    data, id_maps = build_graph(catalog, feats, split.train_rows, relations=cfg.relations,
                                min_support=cfg.min_support, recent_products=cfg.recent_products)
    text_dim = feats.x["product"].shape[1] - len(feats.columns["product"])
    users, items = id_maps.index("user"), id_maps.index("product")

    def idx(pairs: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.from_numpy(users.get_indexer(pairs["user_id"]).astype(np.int64)),
                torch.from_numpy(items.get_indexer(pairs["product_id"]).astype(np.int64)))

    nu, ni = len(users), len(items)
    tu, ti = idx(split.train_pairs)
    val = UserItems(*idx(split.val_pairs), nu, ni)
    cat_of = catalog.product_categories.drop_duplicates("product_id")
    cat_codes = pd.Index(catalog.categories["category_id"])
    item_category = torch.full((ni,), -1, dtype=torch.long)
    pos = items.get_indexer(cat_of["product_id"])
    item_category[torch.from_numpy(pos)] = torch.from_numpy(
        cat_codes.get_indexer(cat_of["category_id"]).astype(np.int64)
    )
    select = val.sample_users(cfg.selection_users, cfg.seed)
    if select is not val:
        _log(cfg, f"choices on validation rank {cfg.selection_users:,} of its {torch.unique(val.users).numel():,} "
                  f"users (--selection-users)")
    return Prepared(
        catalog,
        data,
        id_maps,
        tu,
        ti,
        UserItems(tu, ti, nu, ni).align(tu, ti, torch.tensor(split.train_pairs["timestamp"].astype("float64")
                                                              .to_numpy())),
        UserItems(tu, ti, nu, ni),
        val,
        select,
        UserItems(*idx(split.test_pairs), nu, ni),
        item_category,
        split.summary(),
        feats.sentiment,
        feats.norm,
        torch.from_numpy(feats.x["product"][:, :text_dim]) if text_dim else None,
    )


def fit_model(
    name: str,
    prep: Prepared,
    cfg: TrainConfig,
    device: torch.device,
    writer=None,
    init=None,
    selected: dict | None = None,
) -> tuple[object, dict, tuple]:
    """Train one registry model. Returns (model, info, embed_inputs).

    A GNN whose ``cfg.optim.temperature`` lists several temperatures trains one model per temperature and
    keeps the best on validation NDCG@10 (``info["temperature"]``; every value tried in ``info["search"]``)
    by successive halving: the candidates train side by side, and after ``cfg.optim.search_rung`` epochs
    (then twice as many, …) only the better half, by best validation NDCG@10 so far, trains on, until one
    is left to train to its end (``info["search_stopped"]``: the epoch each dropped candidate stopped at);
    a rung stops a candidate only on evidence that the ranking is not noise (:func:`successive_halving`).
    ``init(model, prep)``, when given, sets each fresh model's weights before training (warm start).
    ``selected`` refits with what an earlier fit chose on validation (``info`` of that fit: the epoch
    count and temperature of a trained model, EASE's λ) and no validation of its own.
    """
    grid = cfg.optim.temperature
    if name in GNN_MODELS and selected is not None and "temperature" in selected:
        grid = (selected["temperature"],)
    if name not in GNN_MODELS or len(grid) == 1:
        cfg = replace(cfg, optim=replace(cfg.optim, temperature=grid[:1]))
        fit = _Fit(name, prep, cfg, device, writer, init, selected)
        fit.run()
        model, info, inputs = fit.finish()
        if name in GNN_MODELS:
            info["temperature"] = grid[0]
        return model, info, inputs
    fits = [_Fit(name, prep, replace(cfg, optim=replace(cfg.optim, temperature=(tau,))), device, writer, init,
                 selected, tag=f"{name}/t{tau:g}", announce=i == 0) for i, tau in enumerate(grid)]
    halving = successive_halving(fits, cfg.optim.search_rung, cfg.optim.decline_z)
    stopped = {f"{grid[i]:g}": epoch for i, epoch in halving.items()}
    best = None
    search, seconds = {}, 0.0
    for tau, fit in zip(grid, fits):
        model, info, inputs = fit.finish()
        search[f"{tau:g}"] = info["best_val"]
        seconds += info["train_seconds"]
        why = f"; dropped: behind at epoch {stopped[f'{tau:g}']}" if f"{tau:g}" in stopped else ""
        _log(cfg, f"{name:>10}: temperature {tau:g}: validation ndcg@10 {info['best_val']:.4f} "
                  f"({info['epochs']} epochs in {info['train_seconds']:.1f}s){why}")
        if best is None or info["best_val"] > best[1]["best_val"]:
            best = (model, info, inputs, tau)
    model, info, inputs, tau = best
    info.update(temperature=tau, search=search, train_seconds=seconds)
    if stopped:
        info["search_stopped"] = stopped
    return model, info, inputs


def successive_halving(fits: list, rung: int, z: float) -> dict[int, int]:
    """Train the candidate ``fits`` (objects with ``run(until)``, ``best``, ``epoch``, ``learnt``,
    ``finished`` and ``behind_z(leader)``, as :class:`_Fit`) side by side: after ``rung`` epochs, then
    twice as many, …, the worse half by best validation so far (ties: the later candidate) stops, until
    one is left to train to its end; ``rung`` 0 trains every one to its end.

    A rung stops a candidate only on evidence that the ranking is not noise: the leader has learnt
    (significantly above its first evaluation), or the candidate is more than ``z`` standard errors behind
    it. Near their start the order of the candidates says little: a temperature of 0.4 can lead at epoch
    10 at the level it started from and 0.15, level with it then, end far above it. A candidate kept
    this way trains on to the next rung; the search ends once every candidate has finished. Returns
    ``{candidate index: epoch it was stopped at}``."""
    alive, stopped = list(range(len(fits))), {}
    while True:
        until = rung if rung > 0 and len(alive) > 1 else None
        for i in alive:
            fits[i].run(until)
        if until is None or all(fits[i].finished for i in alive):
            return stopped
        ranked = sorted(alive, key=lambda i: fits[i].best, reverse=True)  # stable: earlier first on ties
        leader = fits[ranked[0]]
        keep = (len(ranked) + 1) // 2
        for i in ranked[keep:]:
            if leader.learnt or fits[i].behind_z(leader) < -z:
                alive.remove(i)
                stopped[i] = fits[i].epoch
        rung *= 2


class _Fit:
    """One registry model being fitted. A trained model's :class:`EmbeddingTrainer` (``trainer``) can be
    advanced a few epochs at a time (:meth:`run`); a closed-form model is fitted when created.
    :meth:`finish` ends training where it is and returns ``(model, info, embed_inputs)``."""

    def __init__(
        self,
        name: str,
        prep: Prepared,
        cfg: TrainConfig,
        device: torch.device,
        writer=None,
        init=None,
        selected: dict | None = None,
        tag: str | None = None,
        announce: bool = True,
    ):
        seed_everything(cfg.seed)
        self.model = model = build_model(name, prep.data, cfg)
        if init is not None:
            init(model, prep)
        t0 = time.perf_counter()
        self.info: dict = {}
        self.inputs: tuple = ()
        self.trainer: EmbeddingTrainer | None = None
        if name not in TRAINED_MODELS:
            if selected is not None and "lambda" in selected:
                model.lam = selected["lambda"]
            if selected is not None and "half_life_days" in selected:
                model.half_life = selected["half_life_days"]
            model.fit(prep.train_index, prep.val_select if selected is None else None, times=prep.train_times)
            self.info = {"epochs": 0}
            if getattr(model, "lam", None) is not None:
                self.info.update({"lambda": model.lam, "selection": model.selection})
            if getattr(model, "half_life", None) is not None:
                self.info.update({"half_life_days": model.half_life, "selection": model.selection})
            self.info["train_seconds"] = time.perf_counter() - t0
            return
        self.model = model = model.to(device)
        batches = None
        optim = cfg.optim
        if name in GNN_MODELS:
            if cfg.optim.neighbours is not None:
                batches = neighbour_batches(prep, cfg, device)
            data = prep.data.to(device)
            self.inputs = (data.x_dict, data.edge_index_dict)
        else:  # a baseline trains with its own published recipe
            optim = model.recipe(len(prep.train_users))
            model.set_graph(prep.train_users.to(device), prep.train_items.to(device))
        if selected is not None:
            optim = replace(optim, epochs=max(1, selected["converged_epoch"]))
        if name in GNN_MODELS and batches is None:  # a full-graph step costs a pass over the whole graph
            scaled = scaled_to(optim, len(prep.train_users))
            if scaled != optim and announce:
                _log(cfg, f"{name:>10}: {len(prep.train_users):,} training pairs: batch {scaled.batch_size:,} "
                          f"(at most {optim.max_steps} steps per epoch), learning rate {scaled.lr:.3g}")
            optim = scaled
        self.info = {"batch_size": optim.batch_size, "lr": optim.lr,
                     "precision": "bf16" if uses_bf16(optim.precision, device) else "fp32"}
        self.setup_seconds = time.perf_counter() - t0
        self.trainer = EmbeddingTrainer(
            model,
            self.inputs,
            prep.train_users,
            prep.train_items,
            prep.val_select,
            [prep.train_index],
            prep.train_index.n_items,
            prep.item_category,
            optim,
            cfg.seed,
            device,
            writer=writer,
            tag=tag or name,
            progress=not cfg.quiet,
            batches=batches,
        )

    @property
    def best(self) -> float:
        """Best validation NDCG@10 so far (-1 before the first validation or for a closed-form model)."""
        return self.trainer.best if self.trainer is not None else -1.0

    @property
    def epoch(self) -> int:
        return self.trainer.epoch if self.trainer is not None else 0

    def behind_z(self, leader: _Fit) -> float:
        """How many standard errors this candidate's best validation NDCG@10 lies from ``leader``'s (paired
        over the validation users; negative when behind). Computed where validation ran and broadcast, so
        every process takes the same decision; 0 when either has no per-user metrics."""
        ours = self.trainer.best_users if self.trainer is not None else None
        theirs = leader.trainer.best_users if leader.trainer is not None else None
        z = paired_z(ours, theirs) if ours is not None and theirs is not None else 0.0
        if dist_info()[1] > 1 and self.trainer is not None:
            z = broadcast_float(z, self.trainer.device)
        return z

    @property
    def learnt(self) -> bool:
        """Whether validation NDCG@10 has risen significantly above its first evaluation (the trainer's
        ``risen``: a paired z-test over the validation users at ``decline_z``); True for a closed-form
        model."""
        return self.trainer.risen if self.trainer is not None else True

    @property
    def finished(self) -> bool:
        return self.trainer.finished if self.trainer is not None else True

    def run(self, until: int | None = None) -> None:
        """Train up to epoch ``until`` (default: to the end); nothing for a closed-form model."""
        if self.trainer is not None:
            self.trainer.run(until)

    def finish(self) -> tuple[object, dict, tuple]:
        if self.trainer is not None:
            done = self.trainer.finish()
            self.info.update(done)
            self.info["train_seconds"] = self.setup_seconds + self.info.pop("seconds")
        return self.model, self.info, self.inputs


def neighbour_batches(prep: Prepared, cfg: TrainConfig, device: torch.device):
    """Neighbour-sampled training batches over the prepared graph (``cfg.optim.neighbours`` fan-outs)."""
    from kgrec.data.schema import load_schema
    from kgrec.train.sampling import NeighbourBatches

    fanout = cfg.optim.neighbours
    if len(fanout) != cfg.layers:
        raise ValueError(
            f"--neighbours gives {len(fanout)} fan-outs for a {cfg.layers}-layer model; "
            f"give one per layer (e.g. {','.join(['10'] * cfg.layers)})"
        )
    return NeighbourBatches(
        copy.copy(prep.data).cpu(),
        load_schema().target.triple,
        prep.train_users,
        prep.train_items,
        fanout,
        cfg.optim.batch_size,
        cfg.optim.negatives,
        cfg.seed,
        device,
    )


def scorer(name: str, model, embed_inputs: tuple, device: torch.device):
    """``users [B] -> scores [B, I]`` for any registry model."""
    if name in TRAINED_MODELS:
        U, I = embeddings(model, embed_inputs, device)
        return lambda users: U[users] @ I.T
    return model.score_users


def build_prior(prep: Prepared, ease: EASE | float | bool | None = None):
    """KG path scores over the training split: co-interaction, text, the graph's category/brand edges and,
    up to ``EASE.MAX_ITEMS`` products, EASE^R's item-item weights. ``ease``: an :class:`EASE` already
    fitted on ``prep``'s training split (the run's baseline, reused), or the L2 weight to fit it with (the
    refit, with what validation chose), or None: its weight is chosen on ``prep``'s validation split;
    False leaves the relation out. The prior's ``ease_lambda`` is the weight used (None without it:
    left out, or a catalog too large for EASE^R)."""
    from kgrec.models.paths import PathPrior

    edges = {}
    for key, rel in (("category", "in_category"), ("brand", "made_by")):
        et = ("product", rel, key)
        if et in prep.data.edge_types:
            ei = prep.data[et].edge_index.cpu()
            edges[key] = (ei[0], ei[1])
    n_users, n_items = prep.train_index.n_users, prep.train_index.n_items
    fitted = ease if isinstance(ease, EASE) else None
    if fitted is None and ease is not False and n_items <= EASE.MAX_ITEMS and len(prep.train_index):
        fitted = EASE(n_users, n_items, lam=ease).fit(prep.train_index, prep.val_select if ease is None else None)
    prior = PathPrior.build(prep.train_index, prep.product_text, edges, ease=fitted.B if fitted else None)
    prior.ease_lambda = fitted.lam if fitted else None
    return prior


def _init_distributed(cfg: TrainConfig) -> tuple[int, int, torch.device | None]:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1): gloo on CPU, NCCL on CUDA."""
    import os

    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    device = resolve_device(cfg.device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return dist.get_rank(), world, device


def check_config(cfg: TrainConfig) -> None:
    """Errors a run would otherwise hit after minutes of feature work: unknown names, a missing sampler."""
    from kgrec.config import MODEL_NAMES
    from kgrec.data.schema import load_schema

    for name in (cfg.model, *cfg.baselines):
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if not cfg.optim.min_improvement >= 0:
        raise ValueError(f"min_improvement must be 0 or a positive fraction (0.01 = 1 %), "
                         f"not {cfg.optim.min_improvement}")
    if cfg.optim.search_rung < 0:
        raise ValueError(f"search_rung must be 0 (train every temperature to its end) or a number of epochs, "
                         f"not {cfg.optim.search_rung}")
    if not isinstance(cfg.min_support, int) or cfg.min_support < 1:
        raise ValueError(f"min_support must be a whole number of users, at least 1, not {cfg.min_support!r}")
    if not isinstance(cfg.recent_products, int) or cfg.recent_products < 0:
        raise ValueError(f"recent_products must be a whole number of products, 0 or more, not {cfg.recent_products!r}")
    if not math.isfinite(cfg.history_tower) or cfg.history_tower < 0:
        raise ValueError(f"history_tower must be a starting weight of 0 (off) or more, not {cfg.history_tower!r}")
    if not isinstance(cfg.selection_users, int) or cfg.selection_users < 0:
        raise ValueError(f"selection_users must be a whole number of users, 0 (all) or more, "
                         f"not {cfg.selection_users!r}")
    if cfg.relations is not None:
        names = {e.name for e in load_schema().edges.values() if not e.target}
        unknown = sorted(set(cfg.relations) - names)
        if unknown:
            raise ValueError(f"unknown relations {unknown}; choose from {', '.join(sorted(names))}, or 'none'")
    if cfg.optim.neighbours is not None:
        from kgrec.train.sampling import require_neighbour_sampler

        require_neighbour_sampler()


def run_training(cfg: TrainConfig, catalog: Catalog | None = None, init=None, annotate=None) -> dict:
    """Run the whole path and write RUN_DIR (``cfg.out``). Returns the metrics dict (as in metrics.json).

    The run folder is written atomically (:func:`kgrec.serve.run.run_writer`): until the run succeeds,
    an earlier run in ``cfg.out`` stays as it was. Under ``torchrun`` every process trains on its shard
    of each batch (see :func:`kgrec.train.loop.train_embedding_model`); rank 0 alone evaluates and
    writes RUN_DIR, and the other ranks return an empty dict. ``init(model, prep)`` warm-starts the
    main model (refresh); ``annotate(metrics)`` may add entries to the metrics before they are written.
    """
    from kgrec.serve.run import run_writer

    check_config(cfg)
    keep_freed_memory()  # before the first large allocation (features, EASE^R's Gram matrix, training)
    rank, world, dist_device = _init_distributed(cfg)
    if rank != 0:
        _train(replace(cfg, quiet=True), catalog, init, None, world, dist_device)
        _finish_distributed(world)
        return {}
    with run_writer(cfg.out) as folder:
        metrics = _train(cfg, catalog, init, folder, world, dist_device, annotate)
    _finish_distributed(world)
    return metrics


def _train(
    cfg: TrainConfig,
    catalog: Catalog | None,
    init,
    folder: Path | None,
    world: int,
    dist_device: torch.device | None,
    annotate=None,
) -> dict:
    """Everything :func:`run_training` does; rank 0 (``folder`` given) evaluates and writes into ``folder``."""
    main = folder is not None
    catalog = catalog if catalog is not None else load_source(cfg)
    cfg = resolve_encoder(cfg, catalog)
    seed_everything(cfg.seed)
    device = dist_device or resolve_device(cfg.device)
    if world > 1:  # rank 0 fills the text cache first; the others then read it
        import torch.distributed as dist

        if main:
            prep = prepare(cfg, catalog)
        dist.barrier()
        if not main:
            prep = prepare(cfg, catalog)
    else:
        prep = prepare(cfg, catalog)
    _log(
        cfg,
        f"graph: {prep.data.num_nodes} nodes, {prep.data.num_edges} edges, "
        f"{len(prep.data.edge_types)} edge types; device {device}" + (f"; {world} processes" if world > 1 else ""),
    )
    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(folder / "tensorboard"))
    names = [cfg.model] + [b for b in cfg.baselines if b != cfg.model]
    results: dict = {}
    per_user: dict[str, dict] = {}  # model → its test users and their NDCG@10 (test_per_user.npz)
    main_model, main_inputs, main_info, main_score, hybrid = None, (), {}, None, None
    ease = None  # the EASE^R baseline, when the run trains one: the ease path relation reuses it
    for name in names:
        if not main and name not in TRAINED_MODELS:
            continue  # nothing to share: rank 0 fits it alone
        model, info, inputs = fit_model(name, prep, cfg, device, writer, init if name == cfg.model else None)
        if name == cfg.model:
            main_model, main_inputs, main_info = model, inputs, info
        if not main:
            continue
        score = scorer(name, model, inputs, device)
        if name == cfg.model:
            main_score = score
        if isinstance(model, EASE):
            ease = model
        val = evaluate_ranking(score, prep.val_index, [prep.train_index])
        test = evaluate_ranking(score, prep.test_index, [prep.train_index, prep.val_index],
                                per_user=per_user.setdefault(name, {}))
        results[name] = {
            "val": val,
            "test": test,
            "epochs": info["epochs"],
            "train_seconds": info["train_seconds"],
            "curve": info.get("curve", []),
        }
        for key in ("best_epoch", "converged_epoch", "precision", "lambda", "half_life_days", "selection",
                    "temperature", "search", "search_stopped", "stopped", "batch_size", "lr"):
            if key in info:
                results[name][key] = info[key]
        _log(
            cfg,
            f"{name:>10}: test ndcg@10 {test.get('ndcg@10', float('nan')):.4f}  "
            f"recall@10 {test.get('recall@10', float('nan')):.4f}  ({info['train_seconds']:.1f}s)",
        )
    if main and cfg.paths and cfg.model in GNN_MODELS:  # after the baselines: EASE^R's fit is reused
        hybrid = _add_paths(cfg, prep, cfg.model, main_score, results, per_user, ease=ease)
    if "temperature" in main_info:  # what validation chose is what the run is, and what it saves
        cfg = replace(cfg, optim=replace(cfg.optim, temperature=(main_info["temperature"],)))
    served_prep, served_model, served_inputs, served_hybrid = prep, main_model, main_inputs, hybrid
    if cfg.refit:  # every process takes part in the refit's training steps
        served_prep, served_model, served_inputs, served_hybrid = _refit(cfg, prep, main_info, hybrid, device, init)
    if not main:
        return {}
    writer.close()
    served_name = f"{cfg.model}+paths" if served_hybrid is not None else cfg.model
    served = {
        "model": served_name,
        "refit": cfg.refit,
        "pairs": len(served_prep.train_index),
        "epochs": main_info.get("converged_epoch", 0) if cfg.refit else main_info.get("epochs", 0),
        "sentiment": served_prep.sentiment,  # the served model's sentiment model (the refit trains it again)
    }
    _log(
        cfg,
        f"serving {served_name}, "
        + (
            f"refitted on all {served['pairs']} pairs"
            if cfg.refit
            else f"fitted on the {served['pairs']} training pairs"
        ),
    )
    metrics = {
        "dataset": prep.catalog.source,
        "synthetic": prep.catalog.synthetic,
        "split": cfg.split,
        "seed": cfg.seed,
        "split_sizes": prep.split_summary,
        "sentiment": prep.sentiment,
        "models": results,
        "served": served,
        "processes": world,
    }
    from kgrec.serve.run import save_model, write_json

    if annotate is not None:
        annotate(metrics)
    save_model(folder, cfg, served_model, served_inputs, served_prep, device, paths=served_hybrid)
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "config.json", cfg.to_dict())
    save_per_user(folder / PER_USER_FILE, per_user)
    return json.loads(json.dumps(metrics, default=float))


PER_USER_FILE = "test_per_user.npz"


def save_per_user(path: Path, per_user: dict[str, dict]) -> None:
    """Each model's per-user test NDCG@10 as ``path`` (NumPy ``.npz``): ``users`` (the test users, the same
    for every model) and one float64 array per model name. Nothing is written without a test split."""
    rows = {name: p for name, p in per_user.items() if "users" in p}
    if not rows:
        return
    users = next(iter(rows.values()))["users"]
    if any(not torch.equal(p["users"], users) for p in rows.values()):
        raise AssertionError("models were tested on different users")
    np.savez(path, users=users.numpy(), **{name: p["ndcg@10"].numpy() for name, p in rows.items()})


def load_per_user(path: str | Path) -> dict[str, np.ndarray]:
    """What :func:`save_per_user` wrote: ``{"users": [n], model name: [n] NDCG@10}``."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _refit(cfg: TrainConfig, prep: Prepared, info: dict, hybrid, device: torch.device, init=None):
    """The served model: ``cfg.model`` refitted on every interaction (split ``all``: features, graph and
    path histories too) with the epoch count / λ chosen on validation, plus the same path weights. The
    sentiment model is the method ``auto`` chose on the first pass, trained again on every review (at the
    mid-size demo shop, fitting TF-IDF as well took 26 of the refit features' 28 s)."""
    from kgrec.data.split import ALL
    from kgrec.models.paths import HybridScorer

    t0 = time.perf_counter()
    if cfg.sentiment_method == "auto" and prep.sentiment.get("method"):  # chosen on validation, as the epochs
        cfg = replace(cfg, sentiment_method=prep.sentiment["method"])
    prep_all = prepare(cfg, prep.catalog, split=ALL)
    model, _, inputs = fit_model(cfg.model, prep_all, cfg, device, init=init, selected=info)
    served_hybrid = None
    if hybrid is not None:
        # EASE^R with the λ validation chose, when the served blend weights it
        prior = build_prior(prep_all, hybrid.prior.ease_lambda if hybrid.weights.get("ease") else False)
        served_hybrid = HybridScorer(scorer(cfg.model, model, inputs, device), prior, hybrid.weights)
    _log(cfg, f"refit of {cfg.model} on all {len(prep_all.train_index)} pairs in {time.perf_counter() - t0:.1f}s")
    return prep_all, model, inputs, served_hybrid


def _add_paths(cfg: TrainConfig, prep: Prepared, name: str, score, results: dict, per_user: dict,
               ease: EASE | None = None):
    """Evaluate ``NAME+paths`` (GNN + validation-weighted path scores), and with ``cfg.paths_ablation``
    ``paths`` alone (the ablation that shows what the GNN adds), their per-user test NDCG@10 into
    ``per_user``. ``ease``: the run's EASE^R baseline, whose weights the ``ease`` path reuses. Returns the
    fitted hybrid, which the checkpoint then serves."""
    from kgrec.models.paths import HybridScorer

    t0 = time.perf_counter()
    prior = build_prior(prep, ease)
    build_seconds = time.perf_counter() - t0
    rows = {}
    blends = [(f"{name}+paths", score)] + ([("paths", None)] if cfg.paths_ablation else [])
    for row, base in blends:
        t0 = time.perf_counter()  # each row: building the path matrices + its own weight search
        hybrid = HybridScorer(base, prior, {})
        fit = hybrid.fit(prep.val_select, [prep.train_index])
        search_seconds = time.perf_counter() - t0  # the evaluations below are not training
        rows[row] = hybrid
        results[row] = {
            "val": evaluate_ranking(hybrid, prep.val_index, [prep.train_index]),
            "test": evaluate_ranking(hybrid, prep.test_index, [prep.train_index, prep.val_index],
                                     per_user=per_user.setdefault(row, {})),
            "epochs": results[name]["epochs"] if base is not None else 0,
            "train_seconds": (results[name]["train_seconds"] if base is not None else 0.0)
            + build_seconds
            + search_seconds,
            "weights": fit["weights"],
            **({"ease_lambda": prior.ease_lambda} if prior.ease_lambda is not None else {}),
            "weight_search": {k: fit[k] for k in ("val_users", "searched_users", "ranked_users")},
            "curve": [],
        }
        test = results[row]["test"]
        _log(cfg, f"{row:>10}: test ndcg@10 {test.get('ndcg@10', float('nan')):.4f}  weights {fit['weights']}")
    return rows[f"{name}+paths"]


def _finish_distributed(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
