"""The run folder: what ``kgrec train`` writes and what every reader of a run reads, through one pair of
functions, :func:`run_writer` and :func:`load_run`.

A run folder holds

- ``config.json``: the :class:`kgrec.config.TrainConfig` of the run;
- ``metrics.json``: validation and test metrics of the model and its baselines, and what is served;
- ``checkpoint.pt``: the served model: tensors, id lists and plain values only (``weights_only``);
- ``graph.pt``: the message-passing graph of the served model (features, edges, feature norms);
- ``catalog/``: the canonical catalog tables as Parquet, so serving, search, profiles, cold start and
  reports never re-read the export (which may have moved or changed since);
- ``tensorboard/``: training curves;
- ``test_per_user.npz``: every model's test NDCG@10 per user, for paired comparisons
  (``kgrec.train.pipeline.load_per_user``; absent without a test split);
- ``products.faiss`` (large catalogs only): the top-K index over the product vectors (kgrec.serve.ann).

Writing is atomic: everything goes into a temporary sibling folder, which then replaces the run folder
in one rename (the old version is moved aside first and deleted after). A lock file next to the folder
makes a second writer fail at once instead of losing one of two concurrent runs. Reading validates
every tensor (shapes, index ranges, finiteness) before anything is built from it: a damaged or crafted
checkpoint is a :class:`RunError`, never a crash.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor

from kgrec.config import GNN_MODELS, TrainConfig
from kgrec.data.interactions import UserItems
from kgrec.data.schema import load_schema
from kgrec.errors import RunError, UnknownIdError

CHECKPOINT_VERSION = 2
RUN_FILES = ("config.json", "metrics.json", "checkpoint.pt", "graph.pt", "catalog")


# ---------------------------------------------------------------------------- writing
@contextlib.contextmanager
def run_writer(out: str | Path) -> Iterator[Path]:
    """Yields a temporary folder to write a run into; on success it replaces ``out`` atomically.

    Raises :class:`RunError` at once when another process is writing ``out``. On failure the temporary
    folder is removed and ``out`` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lock_path = out.parent / f".{out.name}.lock"
    lock = open(lock_path, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise RunError(f"{out}: another kgrec process is writing this run folder; wait for it or use --out") from None
    _recover(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        _sync_tree(tmp)
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        _fsync_dir(out.parent)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _recover(out: Path) -> None:
    """Under the writer's lock: undo what a writer killed half-way left behind.

    Killed while writing its temporary folder: the folder is deleted. Killed between moving the old
    version aside and moving the new one in: the old version is put back.
    """
    for tmp in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not out.exists():
        os.replace(olds.pop(), out)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)


def _sync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: object) -> None:
    """JSON with NaN and infinities written as null (strict JSON, readable by any parser)."""
    path.write_text(json.dumps(_finite(obj), indent=2, ensure_ascii=False), encoding="utf-8")


def _finite(obj: object) -> object:
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, Tensor):
        return _finite(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _finite(obj.item())
    return obj


def save_model(folder: Path, cfg: TrainConfig, model, embed_inputs: tuple, prep, device: torch.device,
               paths=None) -> None:
    """Write ``checkpoint.pt``, ``graph.pt`` and ``catalog/`` of the served ``model`` into ``folder``.

    ``prep`` is what the model was fitted on (:class:`kgrec.train.pipeline.Prepared`), ``paths`` its
    fitted :class:`kgrec.models.paths.HybridScorer` when path scores are served. Non-finite vectors
    are an error: such a run must never be served.
    """
    from kgrec.serve import ann
    from kgrec.train.loop import embeddings

    ckpt: dict = {
        "version": CHECKPOINT_VERSION,
        "model": cfg.model,
        "schema_hash": load_schema().digest,
        "id_maps": prep.id_maps.to_dict(),
        "titles": prep.catalog.products.set_index("product_id").reindex(prep.id_maps.ids["product"])["title"]
                  .fillna("").astype(str).tolist(),
        "names": _node_names(prep),
        "train_users": prep.train_index.users, "train_items": prep.train_index.items,
        "seen_users": torch.cat([prep.train_index.users, prep.val_index.users, prep.test_index.users]),
        "seen_items": torch.cat([prep.train_index.items, prep.val_index.items, prep.test_index.items]),
    }
    if hasattr(model, "embed"):
        U, I = embeddings(model, embed_inputs, device)
        for what, t in (("user vectors", U), ("product vectors", I)):
            if not torch.isfinite(t).all():
                raise RuntimeError(f"training produced non-finite {what} ({int((~torch.isfinite(t)).any(1).sum())} "
                                   f"rows); the run is not saved. Lower --lr, or report this with the export")
        ckpt["user_emb"], ckpt["item_emb"] = U, I
        ckpt["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    else:
        ckpt.update(model.export())
    if paths is not None:
        ckpt["paths"] = {"state": paths.prior.state(), "weights": {k: float(w) for k, w in paths.weights.items()}}
    data = prep.data
    graph = {
        "x": {t: data[t].x.cpu() for t in data.node_types},
        "edge_index": {"|".join(et): data[et].edge_index.cpu() for et in data.edge_types},
        "norm": {
            t: {"mean": torch.as_tensor(m, dtype=torch.float32), "std": torch.as_tensor(sd, dtype=torch.float32)}
            for t, (m, sd) in prep.feature_norm.items()
        },
    }
    target = load_schema().target.triple
    if target in data.edge_types and "edge_attr" in data[target]:
        graph["target_edge_attr"] = data[target].edge_attr.cpu()  # [E, 3] rating/5, has rating, sentiment
    validate(ckpt, graph, folder)
    torch.save(ckpt, folder / "checkpoint.pt")
    torch.save(graph, folder / "graph.pt")
    prep.catalog.save(folder / "catalog")
    if "item_emb" in ckpt and ann.wants_index(ckpt["item_emb"].shape[0]):  # large catalogs: the top-K index
        run = Run(folder, cfg, {}, ckpt, graph)
        ann.ProductIndex.build(run.index_vectors()).save(folder / ann.INDEX_FILE)


def _node_names(prep) -> dict[str, list[str]]:
    """Display names of category/brand/tag/entity nodes, aligned with the id maps (id when unnamed)."""
    out = {}
    for spec in load_schema().nodes.values():
        if spec.name in ("user", "product") or spec.name not in prep.id_maps.ids:
            continue
        table = prep.catalog.tables[spec.table]
        if "name" not in table.columns:
            continue
        names = dict(zip(table[spec.key], table["name"]))
        out[spec.name] = [
            n if isinstance(n, str) and n else i for i, n in ((i, names.get(i)) for i in prep.id_maps.ids[spec.name])
        ]
    return out


# ---------------------------------------------------------------------------- scoring models
class ScoringModel(Protocol):
    """What a run serves: ``score(users [B]) -> [B, I]`` over every product (higher is better)."""

    def score(self, users: Tensor) -> Tensor: ...


@dataclass
class EmbeddingScores:
    """GNNs and LightGCN: ``U [n_users, d] · I [n_items, d]ᵀ``."""

    users: Tensor
    items: Tensor

    def score(self, users: Tensor) -> Tensor:
        return self.users[users] @ self.items.T


@dataclass
class ItemItemScores:
    """item-kNN and EASE: the user's history ``[B, I]`` times the item-item weights ``[I, I]``."""

    history: UserItems
    weights: Tensor

    def score(self, users: Tensor) -> Tensor:
        return self.history.times(users, self.weights)


@dataclass
class PopularityScores:
    counts: Tensor  # [I]

    def score(self, users: Tensor) -> Tensor:
        return self.counts.unsqueeze(0).expand(users.numel(), -1).clone()


@dataclass
class PathBlend:
    """A base model plus validation-weighted knowledge-graph path scores (kgrec.models.paths)."""

    base: ScoringModel
    hybrid: object  # HybridScorer over base.score

    def score(self, users: Tensor) -> Tensor:
        return self.hybrid(users)


# ---------------------------------------------------------------------------- reading
@dataclass
class Run:
    """A validated run folder. ``model`` is what the run serves; everything else is read from here."""

    path: Path
    config: TrainConfig
    metrics: dict
    ckpt: dict
    graph: dict
    _catalog: object = field(default=None, repr=False)

    # ---- ids
    @property
    def model_name(self) -> str:
        return self.ckpt["model"]

    @property
    def user_ids(self) -> list[str]:
        return self.ckpt["id_maps"]["user"]

    @property
    def product_ids(self) -> list[str]:
        return self.ckpt["id_maps"]["product"]

    @property
    def titles(self) -> list[str]:
        return self.ckpt["titles"]

    def index(self, node_type: str) -> dict[str, int]:
        """Catalog id → row of ``node_type`` (built once per type)."""
        cache = self.__dict__.setdefault("_index", {})
        if node_type not in cache:
            cache[node_type] = {v: i for i, v in enumerate(self.ckpt["id_maps"].get(node_type, []))}
        return cache[node_type]

    def lookup(self, node_type: str, ids) -> Tensor:
        """Rows ``[N]`` of catalog ids; an unknown id is an :class:`UnknownIdError`."""
        index = self.index(node_type)
        try:
            return torch.tensor([index[str(v)] for v in ids], dtype=torch.long)
        except KeyError as exc:
            raise UnknownIdError(f"unknown {node_type} id {exc.args[0]!r} (not in the trained catalog)") from None

    # ---- interactions
    @property
    def history(self) -> UserItems:
        """The interactions the served model was fitted on (and its path scores count)."""
        if "_history" not in self.__dict__:
            n_u, n_i = len(self.user_ids), len(self.product_ids)
            self.__dict__["_history"] = UserItems(self.ckpt["train_users"], self.ckpt["train_items"], n_u, n_i)
        return self.__dict__["_history"]

    @property
    def seen(self) -> UserItems:
        """Every interaction of the run's catalog: what recommendations leave out."""
        if "_seen" not in self.__dict__:
            n_u, n_i = len(self.user_ids), len(self.product_ids)
            self.__dict__["_seen"] = UserItems(self.ckpt["seen_users"], self.ckpt["seen_items"], n_u, n_i)
        return self.__dict__["_seen"]

    # ---- models
    @property
    def served_name(self) -> str:
        """The served model named as in metrics.json: the model, plus ``+paths`` with path scores."""
        return f"{self.model_name}+paths" if self._path_weights() else self.model_name

    def _path_weights(self) -> dict:
        paths = self.ckpt.get("paths")
        return {k: w for k, w in paths["weights"].items() if w} if paths else {}

    @property
    def model(self) -> ScoringModel:
        """The served scoring model (built once)."""
        if "_model" not in self.__dict__:
            c = self.ckpt
            if "user_emb" in c:
                base: ScoringModel = EmbeddingScores(c["user_emb"], c["item_emb"])
            elif "item_item" in c:
                base = ItemItemScores(self.history, c["item_item"])
            else:
                base = PopularityScores(c["popularity"])
            model = base
            if self._path_weights():
                from kgrec.models.paths import HybridScorer, PathPrior

                prior = PathPrior.from_state(self.history, c["paths"]["state"])
                vectors = (base.users, base.items) if isinstance(base, EmbeddingScores) else None
                model = PathBlend(base, HybridScorer(base.score, prior, c["paths"]["weights"], vectors))
            self.__dict__["_model"] = model
        return self.__dict__["_model"]

    @property
    def has_vectors(self) -> bool:
        """Whether the served model scores through user and product vectors (embeddings, or a path blend
        over them): what exact scoring at some products and the top-K index need. Item-item and
        popularity runs do not."""
        model = self.model
        return isinstance(model, EmbeddingScores) or (isinstance(model, PathBlend) and model.hybrid.vectors is not None)

    def score_at(self, user: int) -> Callable[[Tensor], Tensor] | None:
        """``items [C] -> [C]``: the served model's exact scores of ``user`` at some products, without
        scoring the others (None without vectors: see :attr:`has_vectors`)."""
        if not self.has_vectors:
            return None
        model = self.model
        if isinstance(model, EmbeddingScores):
            return lambda items: model.users[user] @ model.items[items].T
        u = torch.tensor([user])
        return lambda items: model.hybrid.score_at(u, items[None])[0]

    def index_vectors(self) -> Tensor | None:
        """``[I, d']``, what the top-K index is built over: the product vectors, with the text embeddings
        beside them when the served path blend weights the text path (see
        :meth:`kgrec.models.paths.HybridScorer.linear_items`); None for models without vectors."""
        if not self.has_vectors:
            return None
        model = self.model
        return model.hybrid.linear_items() if isinstance(model, PathBlend) else model.items

    def retrieval(self, user: int, n: int) -> tuple[Tensor, Tensor]:
        """What the index is asked for ``user``: (query ``[d']``, products ``[M]`` to consider besides the
        index's answer: the ``n`` best of each weighted sparse path relation)."""
        model = self.model
        if isinstance(model, PathBlend):
            return model.hybrid.linear_query(torch.tensor([user]))[0], model.hybrid.support(user, n)
        return model.users[user], torch.empty(0, dtype=torch.long)

    @property
    def ann(self):
        """The :class:`kgrec.serve.ann.ProductIndex` the run serves top-K through, or None (exact scoring):
        ``products.faiss`` when the folder has one, else built in memory for a catalog of at least
        :data:`kgrec.config.ANN_MIN_PRODUCTS` products (``kgrec index RUN_DIR`` saves it)."""
        if "_ann" not in self.__dict__:
            from kgrec.serve import ann

            index = None
            vectors = self.index_vectors()
            if vectors is not None:
                if (self.path / ann.INDEX_FILE).is_file():
                    index = ann.ProductIndex.load(self.path / ann.INDEX_FILE, vectors)
                elif ann.wants_index(vectors.shape[0]):
                    print(f"kgrec: building the top-K index of {vectors.shape[0]:,} products in memory "
                          f"('kgrec index {self.path}' saves it with the run)", file=sys.stderr, flush=True)
                    index = ann.ProductIndex.build(vectors)
            self.__dict__["_ann"] = index
        return self.__dict__["_ann"]

    @property
    def hybrid(self):
        """The path blend's :class:`HybridScorer` (None when the run serves no path scores)."""
        return self.model.hybrid if isinstance(self.model, PathBlend) else None

    def node_name(self, node_type: str, index: int) -> str:
        """Display name of a category/brand/tag/entity node (its id when the run has no name)."""
        names = self.ckpt.get("names", {}).get(node_type)
        return names[index] if names else self.ckpt["id_maps"][node_type][index]

    def gnn(self) -> torch.nn.Module:
        """The trained GNN module in eval mode, rebuilt once from the config and the state dict (GNN runs)."""
        if "_gnn" not in self.__dict__:
            self.__dict__["_gnn"] = self._build_gnn()
        return self.__dict__["_gnn"]

    def _build_gnn(self) -> torch.nn.Module:
        if self.model_name not in GNN_MODELS:
            raise RunError(f"{self.path}: this needs a GNN run (rgcn or hgt); this run's model is {self.model_name}")
        from torch_geometric.data import HeteroData

        from kgrec.models import build_model

        data = HeteroData()
        for t, x in self.graph["x"].items():
            data[t].x = x
            data[t].num_nodes = len(self.ckpt["id_maps"][t])
        for et, ei in self.edges.items():
            data[et].edge_index = ei
        model = build_model(self.model_name, data, self.config)
        try:
            model.load_state_dict(self.ckpt["state_dict"])
        except RuntimeError as exc:
            raise RunError(f"{self.path}/checkpoint.pt does not fit the model its config describes ({exc})") from None
        return model.eval()

    @property
    def edges(self) -> dict[tuple[str, str, str], Tensor]:
        return {tuple(k.split("|")): v for k, v in self.graph["edge_index"].items()}

    # ---- the catalog
    def catalog(self):
        """The run's canonical catalog (from ``catalog/``, loaded on first use)."""
        if self._catalog is None:
            from kgrec.data.catalog import Catalog

            folder = self.path / "catalog"
            if not folder.is_dir():
                raise RunError(f"{folder} is missing: this run was written by an older kgrec; retrain it")
            self._catalog = Catalog.read(folder)
        return self._catalog


def _load_torch(path: Path) -> dict:
    if not path.is_file():
        raise RunError(f"{path} not found: train first with 'python train.py --out {path.parent}'")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise RunError(
            f"{path} is damaged or truncated and cannot be read ({type(exc).__name__}); retrain the run, "
            f"or restore the folder from a backup"
        ) from None
    if not isinstance(obj, dict):
        raise RunError(f"{path} is not a kgrec checkpoint")
    return obj


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} not found: train first with 'python train.py --out {path.parent}'") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunError(f"{path} is damaged ({exc}); retrain the run") from None


def load_run(path: str | Path) -> Run:
    """Read and validate a run folder (see the module docstring)."""
    run = Path(path)
    if not run.is_dir():
        olds = sorted(run.parent.glob(f".{run.name}.old-*"))
        if olds:  # a writer was killed between its two renames; the next writer puts it back
            raise RunError(
                f"{run}: a write of this run folder was interrupted; its previous version is "
                f"{olds[-1]} (rename it back, or train again with --out {run})"
            )
        raise RunError(f"{run}: no such run folder; train first with 'python train.py --out {run}'")
    try:
        config = TrainConfig.from_dict(_load_json(run / "config.json"))
    except (TypeError, ValueError) as exc:
        raise RunError(f"{run}/config.json: {exc}") from None
    metrics = _load_json(run / "metrics.json")
    ckpt = _load_torch(run / "checkpoint.pt")
    graph = _load_torch(run / "graph.pt")
    validate(ckpt, graph, run)
    return Run(run, config, metrics, ckpt, graph)


# ---------------------------------------------------------------------------- validation
def validate(ckpt: dict, graph: dict, where: Path | str = "run") -> None:
    """Check every tensor a run is built from: versions, shapes, index ranges and finiteness."""

    def fail(msg: str) -> None:
        raise RunError(f"{where}: {msg}; the run folder is damaged or was not written by this kgrec")

    if ckpt.get("version") != CHECKPOINT_VERSION:
        fail(f"checkpoint version {ckpt.get('version')!r} is not {CHECKPOINT_VERSION} (retrain it with this kgrec)")
    if ckpt.get("schema_hash") != load_schema().digest:
        fail("trained with another graph_schema (hash mismatch)")
    ids = ckpt.get("id_maps")
    if not isinstance(ids, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in ids.values()
    ):
        fail("id_maps is not a mapping of id lists")
    for key in ("user", "product"):
        if key not in ids:
            fail(f"id_maps lacks {key!r}")
    n = {t: len(v) for t, v in ids.items()}
    n_u, n_i = n["user"], n["product"]
    if not isinstance(ckpt.get("titles"), list) or len(ckpt["titles"]) != n_i:
        fail("titles do not match the products")

    def tensor(obj, name: str, shape: tuple | None = None, dtype=None) -> Tensor:
        if not isinstance(obj, Tensor):
            fail(f"{name} is not a tensor")
        if obj.layout != torch.strided:
            fail(f"{name} must be a dense tensor")
        if dtype is not None and obj.dtype != dtype:
            fail(f"{name} has dtype {obj.dtype}, expected {dtype}")
        if shape is not None and (
            obj.dim() != len(shape) or any(s is not None and a != s for a, s in zip(obj.shape, shape))
        ):
            fail(f"{name} has shape {tuple(obj.shape)}, expected {shape}")
        if obj.is_floating_point() and not bool(torch.isfinite(obj).all()):
            fail(f"{name} holds NaN or infinity")
        return obj

    def index(obj, name: str, size: int) -> Tensor:
        t = tensor(obj, name, (None,), torch.long)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= size):
            fail(f"{name} indexes outside 0..{size - 1}")
        return t

    for part in ("train", "seen"):
        u = index(ckpt.get(f"{part}_users"), f"{part}_users", n_u)
        i = index(ckpt.get(f"{part}_items"), f"{part}_items", n_i)
        if u.numel() != i.numel():
            fail(f"{part}_users and {part}_items differ in length")
    if "user_emb" in ckpt:
        d = tensor(ckpt["user_emb"], "user_emb", (n_u, None), torch.float32).shape[1]
        tensor(ckpt.get("item_emb"), "item_emb", (n_i, d), torch.float32)
    elif "item_item" in ckpt:
        tensor(ckpt["item_item"], "item_item", (n_i, n_i), torch.float32)
    elif "popularity" in ckpt:
        tensor(ckpt["popularity"], "popularity", (n_i,), torch.float32)
        if "half_life_days" in ckpt:  # trending: a positive number of days, or inf (no decay)
            h = ckpt["half_life_days"]
            if not isinstance(h, Tensor) or h.dim() != 0 or not bool(h > 0):
                fail("half_life_days is not a positive number")
    else:
        fail("no scoring tensors (user_emb/item_emb, item_item or popularity)")
    for key, value in (ckpt.get("state_dict") or {}).items():
        tensor(value, f"state_dict[{key}]")
    if "paths" in ckpt:
        paths = ckpt["paths"]
        if not isinstance(paths.get("weights"), dict) or not all(
            isinstance(w, float) and w == w for w in paths["weights"].values()
        ):
            fail("path weights are not numbers")
        for name, s in paths.get("state", {}).items():
            if "dense" in s:
                tensor(s["dense"], f"paths.{name}", (n_i, None), torch.float32)
                continue
            shape = tensor(s.get("shape"), f"paths.{name}.shape", (2,), torch.long).tolist()
            if shape[0] != n_i or shape[1] < 1:
                fail(f"paths.{name} has shape {shape}")
            idx = tensor(s.get("indices"), f"paths.{name}.indices", (2, None), torch.long)
            vals = tensor(s.get("values"), f"paths.{name}.values", (idx.shape[1],), torch.float32)
            if idx.numel() and (int(idx.min()) < 0 or int(idx[0].max()) >= shape[0] or int(idx[1].max()) >= shape[1]):
                fail(f"paths.{name} indexes outside its shape {shape}")
            del vals
    xs = graph.get("x")
    if not isinstance(xs, dict):
        fail("graph.pt has no node features")
    for t, x in xs.items():
        if t not in n:
            fail(f"graph.pt has features of an unknown node type {t!r}")
        tensor(x, f"graph x[{t}]", (n[t], None), torch.float32)
    for key, ei in (graph.get("edge_index") or {}).items():
        parts = key.split("|") if isinstance(key, str) else []
        if len(parts) != 3 or parts[0] not in n or parts[2] not in n:
            fail(f"graph.pt has an edge type {key!r} between unknown node types")
        ei = tensor(ei, f"graph edges {key}", (2, None), torch.long)
        if ei.numel() and (int(ei.min()) < 0 or int(ei[0].max()) >= n[parts[0]] or int(ei[1].max()) >= n[parts[2]]):
            fail(f"graph edges {key} index outside their node types")
    if "target_edge_attr" in graph:
        tensor(graph["target_edge_attr"], "graph target_edge_attr", (None, 3), torch.float32)
    for t, norm in (graph.get("norm") or {}).items():
        if not isinstance(norm, dict):
            fail(f"graph.pt feature norm of {t!r} is malformed")
        mean = tensor(norm.get("mean"), f"graph norm[{t}].mean", (None,))
        std = tensor(norm.get("std"), f"graph norm[{t}].std", (mean.numel(),))
        if bool((std <= 0).any()):
            fail(f"graph norm[{t}].std is not positive")
