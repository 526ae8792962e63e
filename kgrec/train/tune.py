"""Hyperparameter search on validation for a shop's own data (``kgrec tune``), with Optuna.

Each trial trains the GNN (R-GCN or HGT) with one setting of :data:`SPACE` on the training split and
scores it by its best validation NDCG@10 — the metric early stopping already uses. Test interactions
are never looked at. The first trial is always the run's own settings (kgrec's defaults unless flags
change them), so the search can only pick something that beats them on validation. A trial stops
early when its validation NDCG@10 is below the median of the earlier trials at the same epoch (from
epoch 20) and has not improved for 5 validations (Optuna's median pruner inside its patient pruner).
The search is deterministic for a seed on CPU (TPE sampler seeded with ``cfg.seed``; every trial
trains with that seed).

The split, the text features and the sentiment model do not depend on the searched settings; the graph
does (``min_support``, ``recent_products`` and the knowledge-graph relations), so one prepared graph (text
embeddings from the encoder's cache) is kept per distinct structure: 17 for the default space (min_support
1–4 times recent_products 0, 1, 3, 5 with the relations, and one without them, where neither changes
anything).

The history tower's starting weight is searched too; it does not change the graph, and a trial whose
graph has no ``recently_chose`` relation trains with it off.

After the search, :func:`tuned_config` is the run's configuration with the best trial's settings; the
caller trains it as a normal run (baselines, path scores and the serving refit included), so its
``config.json`` records the chosen settings and ``metrics.json`` the search (``tuning``).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field, replace

from kgrec.config import GNN_MODELS, TrainConfig
from kgrec.errors import KgrecError

# name → (kind, arguments): what a trial may set. Ranges bracket what the benchmarks found on the dev
# sets (temperature 0.15, lr 1e-3, width 256, 2 layers, min_support 3), wide enough for other shops;
# a run's own settings outside them widen them (space_for).
SPACE: dict[str, tuple[str, tuple]] = {
    "temperature": ("log", (0.05, 0.5)),
    "lr": ("log", (3e-4, 3e-3)),
    "hidden": ("choice", (64, 128, 256)),
    "layers": ("int", (1, 3)),
    "dropout": ("float", (0.0, 0.3)),
    "min_support": ("int", (1, 4)),
    "recent_products": ("choice", (0, 1, 3, 5)),  # 0: without the recently_chose relation
    "kg_relations": ("choice", (True, False)),  # False: interactions only (no catalog or derived relations)
    # the GNN's recent-history tower's starting weight (0: off); it reads recently_chose, so a trial
    # without that relation trains with it off. Validation split between the dev sets (the benchmarks
    # README, eighteenth stop), so a shop's own validation decides
    "history_tower": ("choice", (0.0, 1.0)),
}
CONDITIONAL = ("history_tower",)  # suggested only where the trial's graph has recently_chose


def defaults(cfg: TrainConfig) -> dict:
    """The searched settings as ``cfg`` has them (the first trial)."""
    return {
        "temperature": cfg.optim.temperature[0],
        "lr": cfg.optim.lr,
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "dropout": cfg.dropout,
        "min_support": cfg.min_support,
        "recent_products": cfg.recent_products,
        "kg_relations": cfg.relations != (),
        "history_tower": cfg.history_tower,
    }


def space_for(cfg: TrainConfig) -> dict[str, tuple[str, tuple]]:
    """:data:`SPACE` widened to hold ``cfg``'s own settings (the first trial), e.g. a ``--hidden 32``."""
    start = defaults(cfg)
    out = {}
    for name, (kind, args) in SPACE.items():
        value = start[name]
        if kind == "choice":
            args = args if value in args else (*args, value)
        else:
            args = (min(args[0], value), max(args[1], value))
        out[name] = (kind, args)
    return out


def _keeps_derived(cfg: TrainConfig, derivations: tuple[str, ...] | None = None) -> bool:
    """Whether ``cfg``'s graph has a derived relation made by one of ``derivations`` (default: those with a
    support threshold, the only ones ``min_support`` changes)."""
    from kgrec.data.graph import SUPPORTED_DERIVATIONS
    from kgrec.data.schema import load_schema

    derivations = derivations or SUPPORTED_DERIVATIONS
    return any(spec.derived in derivations and (cfg.relations is None or spec.name in cfg.relations)
               for spec in load_schema().edges.values())


def _graph_key(cfg: TrainConfig) -> tuple:
    """What of ``cfg`` decides the prepared graph's structure: trials with equal keys share one."""
    from kgrec.data.graph import RECENT_DERIVATION

    return (cfg.relations, cfg.min_support if _keeps_derived(cfg) else None,
            cfg.recent_products if _keeps_derived(cfg, (RECENT_DERIVATION,)) else None)


def apply(cfg: TrainConfig, params: dict) -> TrainConfig:
    """``cfg`` with a trial's settings (the history tower off where the trial's graph has no
    ``recently_chose`` relation for it to read, or the trial did not set it)."""
    optim = replace(cfg.optim, temperature=(float(params["temperature"]),), lr=float(params["lr"]))
    relations = cfg.relations if params["kg_relations"] else ()
    if params["kg_relations"] and relations == ():
        relations = None  # asked for the KG but the base config had none: all of them
    out = replace(cfg, hidden=int(params["hidden"]), layers=int(params["layers"]), dropout=float(params["dropout"]),
                  min_support=int(params["min_support"]), recent_products=int(params["recent_products"]),
                  relations=relations, optim=optim, history_tower=float(params.get("history_tower", 0.0)))
    return out if _has_recent(out) else replace(out, history_tower=0.0)


def _has_recent(cfg: TrainConfig) -> bool:
    """Whether ``cfg``'s graph has the ``recently_chose`` relation (what the history tower reads)."""
    from kgrec.data.graph import RECENT_DERIVATION

    return cfg.recent_products >= 1 and _keeps_derived(cfg, (RECENT_DERIVATION,))


@dataclass
class Tuning:
    """What a search found: the best trial's settings and validation NDCG@10, and every trial."""

    best: dict
    best_val: float
    default_val: float | None
    trials: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    space: dict[str, tuple[str, tuple]] = field(default_factory=lambda: dict(SPACE))

    def to_dict(self) -> dict:
        return {"best": self.best, "best_val_ndcg@10": self.best_val, "default_val_ndcg@10": self.default_val,
                "trials": self.trials, "seconds": round(self.seconds, 1),
                "space": {name: {"kind": kind, "values": list(args)} for name, (kind, args) in self.space.items()}}


def _require_optuna():
    try:
        import optuna
    except ImportError:
        raise KgrecError("kgrec tune needs Optuna: pip install 'kgrec[tune]' (or pip install optuna)") from None
    return optuna


def _suggest(trial, name: str, space: dict[str, tuple[str, tuple]]):
    kind, args = space[name]
    if kind == "log":
        return trial.suggest_float(name, *args, log=True)
    if kind == "float":
        return trial.suggest_float(name, *args)
    if kind == "int":
        return trial.suggest_int(name, *args)
    return trial.suggest_categorical(name, list(args))


class _PruningReporter:
    """Stands in for the TensorBoard writer of :func:`kgrec.train.loop.train_embedding_model`: each
    validation NDCG@10 is reported to the trial, which may stop it (``optuna.TrialPruned``)."""

    def __init__(self, trial, optuna):
        self.trial, self.optuna = trial, optuna

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if tag.endswith("val_ndcg@10"):
            self.trial.report(float(value), step)
            if self.trial.should_prune():
                raise self.optuna.TrialPruned()


def tune(cfg: TrainConfig, trials: int = 30, timeout: float | None = None, catalog=None,
         progress: bool = True) -> Tuning:
    """Search :data:`SPACE` for ``cfg.model`` on validation NDCG@10: at most ``trials`` trials, and none
    started after ``timeout`` seconds. Returns the :class:`Tuning`."""
    from kgrec.runtime import resolve_device
    from kgrec.train.pipeline import check_config, fit_model, load_source, prepare, resolve_encoder

    optuna = _require_optuna()
    if cfg.model not in GNN_MODELS:
        raise KgrecError(f"kgrec tune searches the GNN's settings; --model must be one of {', '.join(GNN_MODELS)}, "
                         f"not {cfg.model!r}")
    if trials < 1:
        raise KgrecError(f"--trials must be at least 1, not {trials}")
    check_config(cfg)
    catalog = catalog if catalog is not None else load_source(cfg)
    cfg = resolve_encoder(replace(cfg, quiet=True), catalog)
    device = resolve_device(cfg.device)
    prepared: dict = {}
    start = time.perf_counter()

    space = space_for(cfg)

    def objective(trial) -> float:
        params = {name: _suggest(trial, name, space) for name in space if name not in CONDITIONAL}
        if _has_recent(apply(cfg, params)):  # the tower only where its relation is: no inert choice recorded
            params["history_tower"] = _suggest(trial, "history_tower", space)
        one = apply(cfg, params)
        key = _graph_key(one)
        if key not in prepared:
            prepared[key] = prepare(one, catalog)
        prep = prepared[key]
        if len(prep.val_index) == 0:
            raise KgrecError("kgrec tune needs validation interactions; this split has none")
        t0 = time.perf_counter()
        _, info, _ = fit_model(one.model, prep, one, device, writer=_PruningReporter(trial, optuna))
        trial.set_user_attr("epochs", info["best_epoch"])
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
        return float(info["best_val"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():  # PatientPruner is marked experimental (since Optuna 2.8)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # a trial stops when it is below the median of the earlier ones at the same epoch (from epoch 20)
        # and has not improved for 5 validations (10 epochs): on magazine the plain median pruner, and a
        # bottom-quarter one, stopped all 20 trials after the first 5, several of them still climbing
        pruner = optuna.pruners.PatientPruner(
            optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=20), patience=5
        )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=cfg.seed),
                                pruner=pruner)
    study.enqueue_trial(defaults(cfg))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=trials, desc="tuning", unit="trial", disable=None)

    def tick(study_, trial) -> None:
        if bar is not None:
            bar.update(1)
            if study_.best_trials:
                bar.set_postfix(best_val_ndcg10=f"{study_.best_value:.4f}")

    study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[tick], catch=())
    if bar is not None:
        bar.close()
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise KgrecError("no tuning trial finished; raise --timeout")
    rows = [
        {"number": t.number, "state": t.state.name.lower(), "params": t.params,
         "val_ndcg@10": t.value if t.value is not None and math.isfinite(t.value) else None,
         "epochs": t.user_attrs.get("epochs"), "seconds": t.user_attrs.get("seconds")}
        for t in study.trials
    ]
    first = study.trials[0]
    default_val = first.value if first.state == optuna.trial.TrialState.COMPLETE else None
    return Tuning(dict(study.best_params), float(study.best_value), default_val, rows,
                  time.perf_counter() - start, space)


def tuned_config(cfg: TrainConfig, tuning: Tuning) -> TrainConfig:
    """``cfg`` with the best trial's settings (one temperature: the search chose it)."""
    return apply(cfg, tuning.best)
