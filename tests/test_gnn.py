"""The R-GCN layer's hand-written backward equals autograd through the per-relation products, and
LightGCN's propagation through it equals PyG's."""
from __future__ import annotations

import math

import pytest
import torch

from kgrec.models.gnn import AdjacencyCache, _RelationalSum, _UnitWithColumn, normalised_adjacency


def _graph(gen: torch.Generator, dtype: torch.dtype = torch.float64):
    sizes = [5, 4, 3]  # three node types
    # (src type, dst type); type 0 gets one relation, type 1 three (added up in place in float32)
    pairs = [(0, 1), (1, 0), (1, 1), (2, 1), (1, 2)]
    rels = []
    for s, d in pairs:
        e = 7
        ei = torch.stack([torch.randint(0, sizes[s], (e,), generator=gen),
                          torch.randint(0, sizes[d], (e,), generator=gen)])
        a, a_t = normalised_adjacency(ei, sizes[s], sizes[d])
        rels.append((s, d, a.to(dtype), a_t.to(dtype)))
    return sizes, rels


@pytest.mark.parametrize("adjacency", [torch.float64, torch.float32])
def test_relational_sum_matches_autograd_of_the_plain_sum(adjacency):
    # float32 adjacencies (training's) add each product into the output in place
    gen = torch.Generator().manual_seed(0)
    sizes, rels = _graph(gen, adjacency)
    weight = torch.rand(len(rels), generator=gen, dtype=torch.float64) + 0.5
    hs = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in sizes]
    up = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in sizes]  # an upstream gradient

    def plain(w, *h):
        out = [torch.zeros_like(x) for x in h]
        for r, (s, d, a, _) in enumerate(rels):
            out[d] = out[d] + w[r] * (a.double() @ h[s])
        return out

    grads = []
    for fn in (plain, lambda w, *h: _RelationalSum.apply(rels, w, *h)):
        w, h = weight.clone().requires_grad_(), [x.clone().requires_grad_() for x in hs]
        out = fn(w, *h)
        sum((o.double() * g).sum() for o, g in zip(out, up)).backward()
        grads.append(([o.detach().double() for o in out], w.grad, [x.grad for x in h]))
    (out_a, gw_a, gh_a), (out_b, gw_b, gh_b) = grads
    close = dict(rtol=1e-5, atol=1e-6)  # the layer accumulates in float32, as it does in training
    for x, y in zip(out_a, out_b):
        torch.testing.assert_close(y, x, **close)
    torch.testing.assert_close(gw_b.double(), gw_a, **close)
    for x, y in zip(gh_a, gh_b):
        torch.testing.assert_close(y.double(), x, **close)
    assert gw_a.abs().sum() > 0


def test_unit_vectors_with_a_column_equal_normalize_and_cat():
    """The decoder's folded vectors: the same forward values as ``cat([normalize(x), c], 1)`` (bit for bit
    in float32), and the same gradients, including a zero row and the bias column; a bf16 ``x`` (HGT
    under autocast) gets its gradient back in bf16."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(40, 16, generator=gen)
    x0[3] = 0.0  # a zero vector: normalize divides by ε there
    bias0 = torch.randn(40, 1, generator=gen)
    up = torch.randn(40, 17, generator=gen)  # an upstream gradient
    results = []
    for fold in (lambda x, b: torch.cat([torch.nn.functional.normalize(x, dim=-1), b], 1), _UnitWithColumn.apply):
        x, b = x0.clone().requires_grad_(), bias0.clone().requires_grad_()
        out = fold(x, b)
        (out * up).sum().backward()
        results.append((out.detach(), x.grad, b.grad))
    (out_a, gx_a, gb_a), (out_b, gx_b, gb_b) = results
    assert torch.equal(out_b, out_a)
    torch.testing.assert_close(gx_b, gx_a, rtol=1e-5, atol=1e-6)
    assert torch.equal(gb_b, gb_a)
    ones = _UnitWithColumn.apply(x0, torch.ones(()))
    assert torch.equal(ones[:, -1], torch.ones(40))
    low = x0.to(torch.bfloat16).requires_grad_()
    out = _UnitWithColumn.apply(low, torch.ones(()))
    (out * up).sum().backward()
    assert out.dtype == torch.float32 and low.grad.dtype == torch.bfloat16 and low.grad.abs().sum() > 0


def test_lightgcn_propagation_equals_pygs():
    """kgrec's LightGCN propagates with ``propagate`` (the symmetric adjacency as its own transpose in the
    backward); embeddings and gradients equal PyG's ``LightGCN.get_embedding`` on the same weights."""
    from kgrec.models.baselines import LightGCNModel

    gen = torch.Generator().manual_seed(1)
    n_users, n_items, e = 30, 12, 150
    model = LightGCNModel(n_users, n_items, hidden=8)
    model.set_graph(torch.randint(0, n_users, (e,), generator=gen), torch.randint(0, n_items, (e,), generator=gen))
    up = torch.randn(n_users + n_items, 8, generator=gen)  # an upstream gradient
    results = []
    for embed in (lambda: torch.cat(model.embed()), lambda: model.model.get_embedding(model.adj)):
        model.zero_grad()
        h = embed()
        (h * up).sum().backward()
        results.append((h.detach(), model.model.embedding.weight.grad.clone()))
    (h_ours, g_ours), (h_pyg, g_pyg) = results
    torch.testing.assert_close(h_ours, h_pyg)
    torch.testing.assert_close(g_ours, g_pyg)
    assert g_pyg.abs().sum() > 0


def test_temperature_search_by_successive_halving_keeps_the_leader_untouched(small_demo, tmp_path):
    """The temperatures train side by side; after a rung only the leader trains on, and it ends exactly
    where training it alone ends (pausing and resuming, and the other candidate, change nothing)."""
    from dataclasses import replace

    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, baselines=(), paths=False,
                      refit=False, out=str(tmp_path / "search"),
                      optim=OptimConfig(epochs=8, batch_size=512, negatives=16, patience=8, temperature=(0.15, 1.0),
                                        search_rung=2, decline_z=0.5))  # a low bar: the rung decides early
    searched = run_training(cfg, small_demo)["models"]["rgcn"]
    winner = searched["temperature"]
    loser = next(f"{t:g}" for t in cfg.optim.temperature if t != winner)
    assert searched["search_stopped"] == {loser: 2}
    assert searched["search"][f"{winner:g}"] > searched["search"][loser]
    alone = run_training(replace(cfg, out=str(tmp_path / "alone"),
                                 optim=replace(cfg.optim, temperature=(winner,))), small_demo)["models"]["rgcn"]
    assert alone["best_epoch"] == searched["best_epoch"] and alone["epochs"] == searched["epochs"] == 8
    assert alone["val"] == searched["val"] and alone["test"] == searched["test"]
    full = run_training(replace(cfg, out=str(tmp_path / "full"), optim=replace(cfg.optim, search_rung=0)),
                        small_demo)["models"]["rgcn"]
    assert "search_stopped" not in full and full["search"][loser] >= searched["search"][loser]


class _Scripted:
    """A search candidate whose validation curve is given: ``curve[e - 1]`` after epoch ``e``; it has learnt
    once its best reaches ``learnt_at``, finishes after ``len(curve)`` epochs (its patience stop), and two
    bests differ by ``(a - b) / 0.01`` standard errors."""

    def __init__(self, curve: list[float], learnt_at: float):
        self.curve, self.learnt_at, self.epoch = curve, learnt_at, 0

    def behind_z(self, leader: _Scripted) -> float:
        return (self.best - leader.best) / 0.01

    def run(self, until: int | None = None) -> None:
        self.epoch = len(self.curve) if until is None else min(max(self.epoch, until), len(self.curve))

    @property
    def best(self) -> float:
        return max(self.curve[: self.epoch], default=-1.0)

    @property
    def learnt(self) -> bool:
        return self.best >= self.learnt_at

    @property
    def finished(self) -> bool:
        return self.epoch >= len(self.curve)


def test_successive_halving_stops_a_candidate_only_on_evidence():
    """A candidate that leads at the rung while still at the level it started from does not end one level
    with it (a slow starter that ends far above it trains on); a leader that has learnt does, and so does
    any leader a candidate is significantly behind; when nothing separates them, the search ends with
    the candidates."""
    from functools import partial

    from kgrec.train.pipeline import successive_halving as halving

    successive_halving = partial(halving, z=3.0)

    flat = [0.110, 0.112] + [0.108] * 22  # leads at epoch 10 at its start level, stops at 24
    slow = [0.108, 0.109, 0.107, 0.108, 0.110, 0.109, 0.108, 0.110, 0.111, 0.110]  # behind it at 10, then
    slow += [0.115 + 0.004 * e for e in range(70)]  # rises to 0.39
    fits = [_Scripted(flat, learnt_at=0.13), _Scripted(slow, learnt_at=0.13)]
    stopped = successive_halving(fits, rung=10)
    assert stopped == {0: 20} and fits[1].epoch == len(slow) and fits[1].best > 0.39

    fast = [0.11, 0.2] + [0.3] * 30  # has learnt before the rung: the other is dropped there
    fits = [_Scripted(slow, learnt_at=0.13), _Scripted(fast, learnt_at=0.13)]
    assert successive_halving(fits, rung=10) == {0: 10} and fits[1].finished

    fits = [_Scripted(flat, learnt_at=0.5), _Scripted(flat[:12], learnt_at=0.5)]  # neither learns
    assert successive_halving(fits, rung=10) == {} and all(f.finished for f in fits)
    assert successive_halving([_Scripted(flat, 0.13), _Scripted(slow, 0.13)], rung=0) == {}

    high, low = [0.20] * 30, [0.05] * 30  # neither rises above its start, but one is 15 errors behind
    assert successive_halving([_Scripted(low, 0.5), _Scripted(high, 0.5)], rung=10) == {0: 10}


class _Dot(torch.nn.Module):
    """The smallest embedding model: free user and product vectors."""

    def __init__(self, n_users: int, n_items: int):
        super().__init__()
        self.u = torch.nn.Parameter(torch.randn(n_users, 4))
        self.i = torch.nn.Parameter(torch.randn(n_items, 4))

    def embed(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.u, self.i


def test_small_gains_do_not_reset_the_patience_and_the_refit_length_is_the_converged_epoch(monkeypatch):
    """Scripted validation NDCG@10 per epoch: 1 % above the last mark resets the patience, a smaller gain
    still becomes the best epoch, and the converged epoch is the first within 1 % of the best."""
    from kgrec.config import OptimConfig
    from kgrec.data.interactions import UserItems
    from kgrec.train import loop

    script = [0.100, 0.105, 0.1055, 0.1056, 0.1057, 0.1058, 0.1059, 0.2]

    def run(min_improvement: float) -> dict:
        values = iter(script)
        monkeypatch.setattr(loop, "evaluate_embeddings", lambda *a, **k: {"ndcg@10": next(values)})
        torch.manual_seed(0)
        users, items = torch.arange(6) % 3, torch.arange(6) % 4
        val = UserItems(torch.tensor([0]), torch.tensor([1]), 3, 4)
        cfg = OptimConfig(epochs=len(script), eval_every=1, patience=3, min_improvement=min_improvement,
                          batch_size=6, negatives=4, temperature=(0.2,), precision="fp32")
        return loop.train_embedding_model(_Dot(3, 4), (), users, items, val, [], 4, None, cfg, 0,
                                          torch.device("cpu"))

    strict = run(0.01)  # marks: 0.100 (epoch 1), 0.105 (epoch 2); epochs 3-5 gain < 1 %: stop after epoch 5
    assert (strict["epochs"], strict["best_epoch"], strict["converged_epoch"]) == (5, 5, 2)
    assert strict["best_val"] == 0.1057
    every = run(0.0)  # every gain resets the patience: trains to the end, where the jump is
    assert (every["epochs"], every["best_epoch"], every["converged_epoch"]) == (8, 8, 8)


def test_paired_z_is_the_paired_t_statistic():
    from kgrec.train.loop import paired_z

    now, then = torch.tensor([1.0, 0.0, 1.0, 0.0]), torch.zeros(4)
    assert paired_z(now, then) == pytest.approx(0.5 / (math.sqrt(1 / 3) / 2))  # mean 0.5, sd sqrt(1/3), n 4
    assert paired_z(then, now) == pytest.approx(-paired_z(now, then))
    assert paired_z(now, now) == 0.0  # agreement on every user: no evidence either way


def test_a_significant_decline_stops_training_and_a_noisy_plateau_does_not(monkeypatch):
    """Scripted per-user validation NDCG@10 of 2,000 users: after the peak at epoch 2, a drop of many
    standard errors held for ``decline_evals`` evaluations stops training well before the patience runs
    out, and keeps the peak; the same drop after a first evaluation that was the peak (validation never
    rose: the model had not learnt yet) and the same epochs with the drop replaced by noise around the
    peak's level run until the patience stops them; ``decline_z=0`` turns the rule off."""
    from kgrec.config import OptimConfig
    from kgrec.data.interactions import UserItems
    from kgrec.train import loop

    gen = torch.Generator().manual_seed(0)
    n = 2000
    peak = (torch.rand(n, generator=gen) < 0.3).double()  # [n]: 30 % of users hit

    def flip(v: torch.Tensor, share: float) -> torch.Tensor:
        """``v`` with a random ``share`` of its hits lost and as many misses gained (same mean on average)."""
        lose = (torch.rand(n, generator=gen) < share) & (v > 0)
        gain = (torch.rand(n, generator=gen) < share * 0.3 / 0.7) & (v == 0)
        return torch.where(lose, 0.0, torch.where(gain, 1.0, v))

    def run(script: list[torch.Tensor], decline_z: float) -> dict:
        values = iter(script)

        def evaluate(*args, **kwargs):
            v = next(values)
            args[5]["users"], args[5]["ndcg@10"] = torch.arange(n), v
            return {"ndcg@10": float(v.mean())}

        monkeypatch.setattr(loop, "evaluate_embeddings", evaluate)
        torch.manual_seed(0)
        users, items = torch.arange(6) % 3, torch.arange(6) % 4
        val = UserItems(torch.tensor([0]), torch.tensor([1]), 3, 4)
        cfg = OptimConfig(epochs=len(script), eval_every=1, patience=10, min_improvement=0.0, decline_z=decline_z,
                          decline_evals=3, batch_size=6, negatives=4, temperature=(0.2,), precision="fp32")
        return loop.train_embedding_model(_Dot(3, 4), (), users, items, val, [], 4, None, cfg, 0,
                                          torch.device("cpu"))

    start = [peak * 0.5, peak]
    declining = start + [torch.where(torch.rand(n, generator=gen) < 0.3 + 0.05 * e, 0.0, peak) for e in range(12)]
    stopped = run(declining, 3.0)
    assert (stopped["epochs"], stopped["best_epoch"], stopped["stopped"]) == (5, 2, "decline")
    assert [c["val_z"] < -3 for c in stopped["curve"]][2:] == [True] * 3
    off = run(declining, 0.0)
    assert (off["epochs"], off["best_epoch"], off["stopped"]) == (12, 2, "patience")
    first_is_best = run([peak] + declining[2:], 3.0)  # no significant rise yet: the model has not learnt
    assert first_is_best["stopped"] != "decline" and first_is_best["best_epoch"] == 1
    plateau = start + [flip(peak, 0.02) for _ in range(12)]
    waited = run(plateau, 3.0)
    assert waited["stopped"] != "decline" and waited["epochs"] >= 12
    assert all(c["val_z"] > -3 for c in waited["curve"])


def test_the_history_tower_moves_a_user_with_their_recent_products_and_is_absent_by_default(small_demo):
    """--history-tower: a user's vector is the encoder's plus w · the mean encoder vector of the products
    recently_chose links them to, w a learned parameter; without the tower the model has no such parameter
    (checkpoints keep their keys) and the relation reaches users only through message passing."""
    from dataclasses import replace

    from kgrec.config import TrainConfig
    from kgrec.models import build_model
    from kgrec.train.pipeline import prepare

    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, baselines=())
    prep = prepare(cfg, small_demo)
    data = prep.data
    et = ("user", "recently_chose", "product")
    assert data[et].edge_index.numel() > 0
    assert "history_weight" not in dict(build_model("rgcn", data, cfg).named_parameters())

    torch.manual_seed(0)
    model = build_model("rgcn", data, replace(cfg, history_tower=1.0))
    assert model.history_weight.item() == 1.0
    model.eval()
    edges = dict(data.edge_index_dict)
    with torch.no_grad():
        h = model.encoder(data.x_dict, edges)
        users, _ = model.embed(data.x_dict, edges)
    src, dst = data[et].edge_index
    u = int(src[0])
    recent = dst[src == u]
    expected = h["user"][u] + h["product"][recent].mean(0)  # w = 1
    torch.testing.assert_close(users[u, :-1], expected / expected.norm())

    model.train()
    U, I = model.embed(data.x_dict, edges)
    (U[:, :-1] @ I[0, :-1]).sum().backward()
    assert model.history_weight.grad is not None and model.history_weight.grad.abs() > 0


def test_the_adjacency_cache_rebuilds_exactly_when_the_edges_change():
    """One build per edge_index; a new build after an in-place change, for another tensor with the same
    values (its memory could be reused by unrelated edges), or for other node counts; ``reverse`` gives
    the reversed relation's adjacency (the history tower's products → users mean)."""
    gen = torch.Generator().manual_seed(0)
    ei = torch.stack([torch.randint(0, 5, (9,), generator=gen), torch.randint(0, 4, (9,), generator=gen)])
    cache = AdjacencyCache()
    a, a_t = cache.get("r", ei, 5, 4)
    assert cache.get("r", ei, 5, 4)[0] is a
    expected = normalised_adjacency(ei, 5, 4)
    assert torch.equal(a.to_dense(), expected[0].to_dense()) and torch.equal(a_t.to_dense(), expected[1].to_dense())

    assert cache.get("r", ei.clone(), 5, 4)[0] is not a  # another tensor
    b = cache.get("r", ei, 6, 4)[0]  # other node counts
    assert b is not a and b.shape == (4, 6)
    ei[1, 0] = (ei[1, 0] + 1) % 4  # in place
    c = cache.get("r", ei, 6, 4)[0]
    assert c is not b and torch.equal(c.to_dense(), normalised_adjacency(ei, 6, 4)[0].to_dense())

    mean, _ = cache.get("rev", ei, 6, 4, mean=True, reverse=True)
    assert mean.shape == (6, 4)
    torch.testing.assert_close(mean.to_dense(), normalised_adjacency(ei.flip(0), 4, 6, mean=True)[0].to_dense())
    rows = mean.to_dense().sum(1)
    has = torch.zeros(6, dtype=torch.bool).index_fill_(0, ei[0], True)
    torch.testing.assert_close(rows[has], torch.ones(int(has.sum())))  # a mean: each source's row sums to 1
