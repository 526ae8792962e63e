"""Knowledge-graph path scores against hand computation, and the validation-weighted hybrid."""
from __future__ import annotations

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


def test_state_round_trip_gives_the_same_scores():
    hist, text, edges = _tiny()
    prior = PathPrior.build(hist, text, edges)
    again = PathPrior.from_state(hist, prior.state())
    users = torch.arange(3)
    for k, v in prior.scores(users).items():
        torch.testing.assert_close(again.scores(users)[k], v)


def test_hybrid_fit_never_lowers_validation_and_zero_weights_keep_the_base_ranking():
    hist, text, edges = _tiny()
    prior = PathPrior.build(hist, text, edges)
    base = lambda users: torch.arange(4.0).expand(users.numel(), 4)  # noqa: E731 - always prefers product 3
    hybrid = HybridScorer(base, prior, {"text": 0.0})
    assert torch.equal(hybrid(torch.arange(3)).argsort(1), base(torch.arange(3)).argsort(1))
    # validation: user 0 next takes product 2 (category/text neighbour of 1), user 1 takes product 0
    val = UserItems(torch.tensor([0, 1]), torch.tensor([2, 0]), 3, 4)
    from kgrec.train.evaluate import evaluate_ranking

    before = evaluate_ranking(HybridScorer(base, prior, {}), val, [hist])["ndcg@10"]
    fit = hybrid.fit(val, [hist])
    assert fit["val_ndcg@10"] >= before
    assert fit["trace"][0]["val_ndcg@10"] == before
