"""The R-GCN layer's hand-written backward equals autograd through the per-relation products, and
LightGCN's propagation through it equals PyG's."""
from __future__ import annotations

import torch

from kgrec.models.gnn import _RelationalSum, normalised_adjacency


def _graph(gen: torch.Generator):
    sizes = [5, 4, 3]  # three node types
    pairs = [(0, 1), (1, 0), (1, 1), (2, 1), (1, 2)]  # (src type, dst type); type 0 gets one relation
    rels = []
    for s, d in pairs:
        e = 7
        ei = torch.stack([torch.randint(0, sizes[s], (e,), generator=gen),
                          torch.randint(0, sizes[d], (e,), generator=gen)])
        a, a_t = normalised_adjacency(ei, sizes[s], sizes[d])
        rels.append((s, d, a.to(torch.float64), a_t.to(torch.float64)))
    return sizes, rels


def test_relational_sum_matches_autograd_of_the_plain_sum():
    gen = torch.Generator().manual_seed(0)
    sizes, rels = _graph(gen)
    weight = torch.rand(len(rels), generator=gen, dtype=torch.float64) + 0.5
    hs = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in sizes]
    up = [torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in sizes]  # an upstream gradient

    def plain(w, *h):
        out = [torch.zeros_like(x) for x in h]
        for r, (s, d, a, _) in enumerate(rels):
            out[d] = out[d] + w[r] * (a @ h[s])
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
    """The temperatures train side by side; after the rung only the leader trains on, and it ends exactly
    where training it alone ends (pausing and resuming, and the other candidate, change nothing)."""
    from dataclasses import replace

    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, baselines=(), paths=False,
                      refit=False, out=str(tmp_path / "search"),
                      optim=OptimConfig(epochs=8, batch_size=512, negatives=16, patience=8, temperature=(0.15, 1.0),
                                        search_rung=2))
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
