"""Knowledge-graph path scores against hand computation, and the validation-weighted hybrid."""
from __future__ import annotations

import pytest
import torch

from kgrec.data.interactions import UserItems
from kgrec.models.paths import HybridScorer, PathPrior


def _tiny():
    # 3 users, 4 products; user 0 has products 0 and 1, user 1 has 1 and 2, user 2 has 3
    hist = UserItems(torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 1, 1, 2, 3]), 3, 4)
    text = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, -1.0]]), dim=1)
    # categories: {0, 1} in c0, {2, 3} in c1; brand b0 for 0 and 3
    edges = {"category": (torch.tensor([0, 1, 2, 3]), torch.tensor([0, 0, 1, 1])),
             "brand": (torch.tensor([0, 3]), torch.tensor([0, 0]))}
    return hist, text, edges


def test_path_scores_match_hand_computed_sums():
    hist, text, edges = _tiny()
    prior = PathPrior.build(hist, text, edges, neighbours=3)
    p = prior.scores(torch.tensor([0, 1, 2]))
    # text: Σ_j∈hist cos(j, i)
    cos = text @ text.T
    expect_text = torch.stack([cos[[0, 1]].sum(0), cos[[1, 2]].sum(0), cos[[3]].sum(0)])
    torch.testing.assert_close(p["text"], expect_text)
    # category: Σ_j∈hist Σ_c [j∈c][i∈c] / |c| (both categories have 2 products)
    same = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.float) / 2
    expect_cat = torch.stack([same[[0, 1]].sum(0), same[[1, 2]].sum(0), same[[3]].sum(0)])
    torch.testing.assert_close(p["category"], expect_cat)
    # brand: products 0 and 3 share b0 (size 2)
    torch.testing.assert_close(p["brand"][:2], torch.tensor([[0.5, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
    # co-interaction: cosine of interaction columns; products 0 and 1 share user 0, 1 and 2 share user 1
    cols = hist.dense(torch.arange(3))  # [U, I]
    norms = cols.sum(0).sqrt()
    sim = (cols.T @ cols) / norms[:, None] / norms[None, :]
    sim.fill_diagonal_(0)
    expect_co = torch.stack([sim[[0, 1]].sum(0), sim[[1, 2]].sum(0), sim[[3]].sum(0)])
    torch.testing.assert_close(p["co_interacted"], expect_co)
    # row-major, as the hybrid adds them up and the evaluation ranks rows (a transposed [B, I] ranks 4x slower)
    assert all(v.is_contiguous() for v in p.values())


def _ease(hist: UserItems) -> torch.Tensor:
    from kgrec.models.baselines import EASE

    return EASE(hist.n_users, hist.n_items, lam=0.5).fit(hist).B


def test_ease_paths_sum_the_strongest_positive_ease_weights_into_each_product():
    hist, val, _, _ = _random_shop(4, n_users=300, n_items=30)
    B = _ease(hist)  # [I, I], B[j, i]: the weight of history product j for product i
    assert (B < 0).any()  # negative weights exist, and are left out
    k = 5
    kept = torch.zeros_like(B)
    for i in range(B.shape[1]):
        top = B[:, i].topk(k)
        keep = top.values > 0
        kept[top.indices[keep], i] = top.values[keep]
    prior = PathPrior.build(hist, None, {}, neighbours=k, ease=B)
    users = torch.arange(50)
    p = prior.scores(users)
    torch.testing.assert_close(p["ease"], hist.dense(users) @ kept)
    # one user's score splits into its history products' contributions
    hist_of, contrib = prior.contributions(3, 7)
    assert torch.equal(hist_of, hist.of(3))
    torch.testing.assert_close(contrib["ease"].sum(), p["ease"][3, 7])
    # at a few products only, the same z-scores as the full rows
    from kgrec.models.paths import zscore

    items = torch.stack([torch.randperm(30, generator=torch.Generator().manual_seed(int(u)))[:6] for u in users])
    torch.testing.assert_close(prior.scores_at(users, items)["ease"], zscore(p["ease"]).gather(1, items),
                               atol=1e-5, rtol=1e-5)
    # candidates for a large catalog: the products with the largest ease path scores are proposed
    top = p["ease"][3].topk(3).indices
    assert set(top.tolist()) <= set(prior.support(3, ["ease"], 3).tolist())


def test_state_round_trip_gives_the_same_scores():
    hist, text, edges = _tiny()
    prior = PathPrior.build(hist, text, edges, ease=_ease(hist))
    assert set(prior.parts) == {"co_interacted", "text", "category", "brand", "ease"}
    again = PathPrior.from_state(hist, prior.state())
    users = torch.arange(3)
    for k, v in prior.scores(users).items():
        torch.testing.assert_close(again.scores(users)[k], v)


def test_the_plain_ascent_never_lowers_validation_and_zero_weights_keep_the_base_ranking():
    hist, text, edges = _tiny()
    prior = PathPrior.build(hist, text, edges)
    base = lambda users: torch.arange(4.0).expand(users.numel(), 4)  # noqa: E731 - always prefers product 3
    hybrid = HybridScorer(base, prior, {"text": 0.0})
    assert torch.equal(hybrid(torch.arange(3)).argsort(1), base(torch.arange(3)).argsort(1))
    # validation: user 0 next takes product 2 (category/text neighbour of 1), user 1 takes product 0
    val = UserItems(torch.tensor([0, 1]), torch.tensor([2, 0]), 3, 4)
    from kgrec.train.evaluate import evaluate_ranking

    before = evaluate_ranking(HybridScorer(base, prior, {}), val, [hist])["ndcg@10"]
    fit = hybrid.fit(val, [hist], replicates=0)
    assert fit["val_ndcg@10"] >= before
    assert fit["trace"][0]["val_ndcg@10"] == before
    assert fit["weights"] == fit["ascent"] == fit["trace"][-1]["weights"]


def test_bagged_weights_are_the_mean_of_the_resamples_ascents_and_rank_as_reported():
    from kgrec.models.paths import GRID
    from kgrec.train.evaluate import evaluate_ranking

    hist, val, prior, (U, I) = _random_shop(2)
    hybrid = HybridScorer(lambda users: U[users] @ I.T, prior, {})
    fit = hybrid.fit(val, [hist], replicates=4, seed=3)
    assert len(fit["replicates"]) == 4
    for name, w in fit["weights"].items():
        assert all(r[name] in GRID for r in fit["replicates"])
        assert w == pytest.approx(sum(r[name] for r in fit["replicates"]) / 4)
    assert hybrid.weights == fit["weights"]
    assert evaluate_ranking(hybrid, val, [hist])["ndcg@10"] == fit["val_ndcg@10"]
    # the resamples disagree on this noise shop, so the mean is not simply one of them
    assert len({tuple(r.values()) for r in fit["replicates"]}) > 1
    again = HybridScorer(lambda users: U[users] @ I.T, prior, {}).fit(val, [hist], replicates=4, seed=3)
    assert again["weights"] == fit["weights"]  # deterministic for a seed


def test_the_weight_search_without_validation_users_keeps_the_starting_weights():
    hist, text, edges = _tiny()
    prior = PathPrior.build(hist, text, edges)
    nobody = UserItems(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long), 3, 4)
    fit = HybridScorer(lambda users: torch.zeros(users.numel(), 4), prior, {}).fit(nobody, [hist])
    assert fit["replicates"] == []
    assert set(fit["weights"].values()) == {0.0}


def _random_shop(seed: int = 0, n_users: int = 2500, n_items: int = 60):
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(0, n_users, (12_000,), generator=g)
    items = torch.randint(0, n_items, (12_000,), generator=g)
    hist = UserItems(users, items, n_users, n_items)
    val = UserItems(torch.arange(n_users), torch.randint(0, n_items, (n_users,), generator=g), n_users, n_items)
    text = torch.randn(n_items, 8, generator=g)
    edges = {"category": (torch.arange(n_items), torch.arange(n_items) % 7),
             "brand": (torch.arange(n_items), torch.arange(n_items) % 11)}
    vectors = torch.randn(n_users, 4, generator=g), torch.randn(n_items, 4, generator=g)
    return hist, val, PathPrior.build(hist, text, edges, neighbours=10, ease=_ease(hist)), vectors


def test_the_weight_search_gives_the_same_weights_and_trace_with_and_without_its_term_cache():
    hist, val, prior, (U, I) = _random_shop()
    base = lambda users: U[users] @ I.T  # noqa: E731
    fits = []
    from kgrec.train.evaluate import evaluate_ranking

    # none kept; all kept; the first of the three batches of 1,024 validation users kept
    for budget in (0, 2 << 30, 1024 * 60 * 4 * 5):
        hybrid = HybridScorer(base, prior, {})
        fits.append(hybrid.fit(val, [hist], cache_bytes=budget, replicates=2))
        # the fitted scorer ranks as the search measured it
        assert evaluate_ranking(hybrid, val, [hist])["ndcg@10"] == fits[-1]["val_ndcg@10"]
    assert fits[0]["trace"] == fits[1]["trace"] == fits[2]["trace"]
    assert fits[0]["weights"] == fits[1]["weights"] == fits[2]["weights"]
    assert len(fits[0]["trace"]) > 1  # the search moved at least once: the comparison is not vacuous


def test_past_its_memory_bound_the_weight_search_ranks_a_uniform_sample_of_the_validation_users():
    from kgrec.models.paths import _TermCache

    hist, val, prior, (U, I) = _random_shop(3, n_users=900, n_items=300)
    base = lambda users: U[users] @ I.T  # noqa: E731
    names = ["co_interacted", "text", "category", "brand", "ease"]
    everyone = HybridScorer(base, prior, {}).fit(val, [hist], replicates=2)
    assert everyone["searched_users"] == everyone["val_users"] == 900 and everyone["sample"].numel() == 900
    per_user = _TermCache.bytes_per_user(HybridScorer(base, prior, {}), names)
    fits = []
    for seed in (0, 0, 1):
        fits.append(HybridScorer(base, prior, {}).fit(val, [hist], replicates=2, seed=seed,
                                                      search_bytes=200 * per_user))
    small = fits[0]
    assert small["val_users"] == 900 and small["ranked_users"] == 200  # exactly as many as fit
    assert 200 <= small["searched_users"] == small["sample"].numel() < 900
    assert torch.equal(fits[1]["sample"], small["sample"])  # seeded
    assert not torch.equal(fits[2]["sample"], small["sample"])
    # the same search as one given only the sampled users' validation items
    keep = torch.isin(val.users, small["sample"])
    sub = UserItems(val.users[keep], val.items[keep], val.n_users, val.n_items)
    direct = HybridScorer(base, prior, {}).fit(sub, [hist], replicates=2, seed=0)
    assert direct["searched_users"] == small["searched_users"]
    assert direct["weights"] == small["weights"] and direct["trace"] == small["trace"]
    assert len(small["trace"]) > 1  # the search moved: the comparison is not vacuous


@pytest.mark.parametrize("with_gnn", [True, False])
def test_users_out_of_reach_are_not_ranked_and_every_users_ndcg_is_unchanged(with_gnn):
    from kgrec.models.paths import _Landscape, _within_reach
    from kgrec.train.evaluate import evaluate_ranking

    hist, val, prior, (U, I) = _random_shop(2, n_users=600, n_items=400)
    hybrid = HybridScorer((lambda users: U[users] @ I.T) if with_gnn else None, prior, {})
    names = ["co_interacted", "text", "category", "brand", "ease"]
    land = _Landscape(hybrid, names, val, [hist], 2 << 30)
    assert 0 < land.ranked.numel() < land.n_users  # some users are decided: the check is not vacuous
    users = torch.unique(val.users)  # in batches of 7 users (a small memory budget): the same decisions
    small = _within_reach(hybrid, names, val, [hist], users, budget=7 * 400 * (4 * 7 + 2))
    assert torch.equal(small.nonzero().squeeze(1), land.ranked)
    for weights in ({"text": 1.0}, {"co_interacted": 4.0, "category": 0.25}, {"brand": 0.0625, "text": 3.9375},
                    {"co_interacted": 2.0, "text": 0.5, "category": 1.0, "brand": 4.0}, {"ease": 2.0, "text": 1.0}):
        w = {n: 0.0 for n in names} | weights
        hybrid.weights = dict(w)
        full: dict = {}
        m = evaluate_ranking(hybrid, val, [hist], per_user=full)
        assert torch.equal(land.per_user(w), full["ndcg@10"])
        assert land.mean(w) == pytest.approx(m["ndcg@10"], abs=1e-12)


def test_cached_terms_sum_to_the_served_score_bit_for_bit():
    from kgrec.models.paths import _TermCache

    hist, _, prior, (U, I) = _random_shop(1)
    hybrid = HybridScorer(lambda users: U[users] @ I.T, prior, {})
    cache = _TermCache(hybrid, ["co_interacted", "text", "category", "brand", "ease"], 2 << 30)
    users = torch.arange(40, 90)
    for weights in ({}, {"text": 0.5}, {"co_interacted": 4.0, "brand": 0.25, "category": 1.0, "text": 2.0},
                    {"ease": 1.0, "co_interacted": 0.5}):
        hybrid.weights = {"co_interacted": 0.0, "text": 0.0, "category": 0.0, "brand": 0.0, "ease": 0.0} | weights
        assert torch.equal(cache(users), hybrid(users))
    assert len(cache.kept) == 1


def test_the_run_reuses_its_ease_baseline_for_the_path_and_refits_it_with_that_lambda(tmp_path, small_demo,
                                                                                      monkeypatch):
    """The ``ease`` path is the run's EASE^R baseline (not a second λ search), and the refit that serves
    fits it on every interaction with the λ validation chose."""
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.models.baselines import EASE
    from kgrec.serve.recommend import Recommender
    from kgrec.train import pipeline

    fits: list[tuple[float | None, bool]] = []  # (λ given, validation given) of every EASE^R fit
    real_fit = EASE.fit

    def counted(self, history, val=None, *args, **kwargs):
        fits.append((self.lam, val is not None and len(val) > 0))
        return real_fit(self, history, val, *args, **kwargs)

    monkeypatch.setattr(EASE, "fit", counted)
    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, out=str(tmp_path),
                      baselines=("ease",), optim=OptimConfig(epochs=3, batch_size=512, negatives=16, patience=3))
    metrics = pipeline.run_training(cfg, small_demo)
    chosen = metrics["models"]["ease"]["lambda"]
    assert metrics["models"]["rgcn+paths"]["ease_lambda"] == chosen
    weighted = bool(metrics["models"]["rgcn+paths"]["weights"]["ease"])
    # one search on validation (the baseline's), then the refit's fit at the chosen λ if the blend uses it
    assert fits == [(None, True)] + ([(chosen, False)] if weighted else [])
    rec = Recommender.load(tmp_path)
    assert ("ease" in rec.hybrid.prior.parts) == weighted  # a relation of weight 0 is not fitted again


def test_a_catalog_too_large_for_ease_gets_the_other_relations(small_demo, monkeypatch):
    """Above ``EASE.MAX_ITEMS`` products the ``ease`` relation is left out, not an error; ``False`` leaves
    it out at any size, and a given λ is used without a validation search."""
    from kgrec.config import TrainConfig
    from kgrec.models.baselines import EASE
    from kgrec.train.pipeline import build_prior, prepare

    prep = prepare(TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, text=False, sentiment=False), small_demo)
    assert set(build_prior(prep, False).parts) == {"co_interacted", "category", "brand"}
    fixed = build_prior(prep, 7.0)
    assert "ease" in fixed.parts and fixed.ease_lambda == 7.0
    monkeypatch.setattr(EASE, "MAX_ITEMS", prep.train_index.n_items - 1)
    prior = build_prior(prep)
    assert "ease" not in prior.parts and prior.ease_lambda is None
    assert {"co_interacted", "category", "brand"} <= set(prior.parts)
