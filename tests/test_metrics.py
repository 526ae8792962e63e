"""Ranking metrics against hand-computed cases."""
from __future__ import annotations

import math

import pytest
import torch

from kgrec.data.interactions import UserItems
from kgrec.train.evaluate import evaluate_ranking


def ui(pairs, n_users=2, n_items=5):
    u = torch.tensor([p[0] for p in pairs], dtype=torch.long)
    i = torch.tensor([p[1] for p in pairs], dtype=torch.long)
    return UserItems(u, i, n_users, n_items)


SCORES = torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])


def test_hand_computed_metrics():
    targets = ui([(0, 2), (1, 0), (1, 4)])
    exclude = [ui([(0, 0)])]
    m = evaluate_ranking(lambda users: SCORES[users], targets, exclude, ks=(1, 3))
    # user 0: item 0 excluded, ranking 1, 2, 3, 4 → target 2 at rank 2
    # user 1: ranking 4, 3, 2, 1, 0 → targets at ranks 1 and 5
    assert m["recall@1"] == pytest.approx((0 + 0.5) / 2)
    assert m["recall@3"] == pytest.approx((1 + 0.5) / 2)
    ndcg_u0 = 1 / math.log2(3)
    ndcg_u1 = 1.0 / (1 + 1 / math.log2(3))
    assert m["ndcg@3"] == pytest.approx((ndcg_u0 + ndcg_u1) / 2)
    assert m["ndcg@1"] == pytest.approx((0 + 1) / 2)
    assert m["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["coverage@10"] == pytest.approx(4 / 5)  # top lists {1,2,3} and {4,3,2}
    assert m["users"] == 2


def test_per_user_ndcg_is_each_users_own_and_averages_to_the_metric():
    targets = ui([(0, 2), (1, 0), (1, 4)])
    per_user: dict = {}
    m = evaluate_ranking(lambda users: SCORES[users], targets, [ui([(0, 0)])], batch_size=1, per_user=per_user)
    assert per_user["users"].tolist() == [0, 1]
    ndcg = per_user["ndcg@10"]
    assert ndcg.tolist() == pytest.approx([1 / math.log2(3), (1 + 1 / math.log2(6)) / (1 + 1 / math.log2(3))])
    assert float(ndcg.mean()) == pytest.approx(m["ndcg@10"])
    with pytest.raises(ValueError, match="include 10"):
        evaluate_ranking(lambda users: SCORES[users], targets, [], ks=(1, 3), per_user={})


def test_run_saves_every_models_per_user_test_ndcg(demo_run):
    import json

    from kgrec.train.pipeline import PER_USER_FILE, load_per_user

    metrics = json.loads((demo_run / "metrics.json").read_text())
    saved = load_per_user(demo_run / PER_USER_FILE)
    assert set(saved) == {"users", *metrics["models"]}
    for name, m in metrics["models"].items():
        assert saved[name].shape == saved["users"].shape
        assert float(saved[name].mean()) == pytest.approx(m["test"]["ndcg@10"])


def test_perfect_ranking_has_ndcg_one():
    targets = ui([(0, 0), (0, 1), (1, 4)])
    m = evaluate_ranking(lambda users: SCORES[users], targets, [], ks=(2, 5))
    assert m["ndcg@2"] == pytest.approx(1.0) and m["ndcg@5"] == pytest.approx(1.0)
    assert m["recall@2"] == pytest.approx(1.0) and m["mrr"] == pytest.approx(1.0)


def test_metrics_in_range_and_users_without_targets_ignored():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(50, 30, generator=g)
    targets = UserItems(torch.arange(0, 40), torch.randint(0, 30, (40,), generator=g), 50, 30)
    m = evaluate_ranking(lambda users: scores[users], targets, [], ks=(10, 20))
    assert m["users"] == 40
    for k, v in m.items():
        if k != "users":
            assert 0.0 <= v <= 1.0, k


def test_itemknn_dense_and_sparse_paths_agree():
    from kgrec.models.baselines import ItemKNN

    g = torch.Generator().manual_seed(0)
    u, i = torch.randint(0, 300, (3000,), generator=g), torch.randint(0, 500, (3000,), generator=g)
    dense = ItemKNN(300, 500).fit(UserItems(u, i, 300, 500))
    sparse = ItemKNN(300, 500, dense_max=10, neighbours=500).fit(UserItems(u, i, 300, 500))
    users = torch.arange(20)
    assert torch.allclose(dense.score_users(users), sparse.score_users(users), atol=1e-5)
    assert torch.allclose(dense.top_neighbours(5)[2], sparse.top_neighbours(5)[2], atol=1e-6)


def test_ease_matches_its_closed_form_and_picks_lambda_on_validation():
    """B = I - P diag(1/diag P) with P = (XᵀX + λI)⁻¹, zero diagonal; λ is the validation-best of the grid."""
    from kgrec.models.baselines import EASE

    g = torch.Generator().manual_seed(0)
    n_users, n_items = 60, 25
    u, i = torch.randint(0, n_users, (400,), generator=g), torch.randint(0, n_items, (400,), generator=g)
    hist = UserItems(u, i, n_users, n_items)
    model = EASE(n_users, n_items, lam=10.0).fit(hist)
    x = hist.dense(torch.arange(n_users)).double()
    p = torch.linalg.inv(x.T @ x + 10.0 * torch.eye(n_items, dtype=torch.float64))
    b = torch.eye(n_items, dtype=torch.float64) - p / torch.diag(p)[None, :]
    b.fill_diagonal_(0)
    assert torch.allclose(model.B, b.float(), atol=1e-5)
    assert torch.allclose(model.score_users(torch.arange(3)), x[:3].float() @ b.float(), atol=1e-4)

    val = UserItems(torch.arange(n_users), torch.randint(0, n_items, (n_users,), generator=g), n_users, n_items)
    chosen = EASE(n_users, n_items).fit(hist, val)
    trace = {row["lambda"]: row["val_ndcg@10"] for row in chosen.selection}
    assert set(trace) == set(EASE.LAMBDAS)
    assert trace[chosen.lam] == max(trace.values())


@pytest.mark.parametrize("peak, expect", [(3000.0, 4000.0), (1e9, 64000.0)])
def test_ease_looks_past_the_top_of_its_grid_while_validation_still_rises(monkeypatch, peak, expect):
    # a validation curve that peaks at ``peak``: λ doubles past 1,000 until it falls, at most
    # MORE_LAMBDAS times (the curve is scripted: this checks the search, not EASE's fit)
    from kgrec.models.baselines import EASE

    tried: list[float] = []
    weights = EASE.weights
    monkeypatch.setattr(EASE, "weights", staticmethod(lambda gram, lam: tried.append(lam) or weights(gram, lam)))
    monkeypatch.setattr("kgrec.train.evaluate.evaluate_ranking",
                        lambda *_, **__: {"ndcg@10": 1 / (1 + abs(math.log(tried[-1] / peak)))})
    hist = ui([(0, 1), (0, 3), (1, 2)])
    model = EASE(2, 5).fit(hist, ui([(0, 2), (1, 4)]))
    assert model.lam == expect
    extra = [row["lambda"] for row in model.selection][len(EASE.LAMBDAS):]
    assert extra == ([2000.0, 4000.0, 8000.0] if peak == 3000.0 else [1000.0 * 2 ** k for k in range(1, 7)])


def test_ease_refuses_catalogs_too_large_for_a_dense_item_matrix():
    from kgrec.models.baselines import EASE

    with pytest.raises(ValueError, match="dense"):
        EASE(10, EASE.MAX_ITEMS + 1)


def test_mrr_uses_the_best_held_out_item_even_when_excluded_and_can_be_left_out():
    # user 0's targets 3 and 1: the best of them (item 1, score 0.8) is behind item 0 only; user 1's
    # only target is also an excluded item, so nothing ranks it: MRR 1 / (every product + 1)
    targets = ui([(0, 3), (0, 1), (1, 2)])
    exclude = [ui([(1, 2)])]
    m = evaluate_ranking(lambda users: SCORES[users], targets, exclude, ks=(1, 3))
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 5) / 2)
    fast = evaluate_ranking(lambda users: SCORES[users], targets, exclude, ks=(1, 3), mrr=False)
    assert "mrr" not in fast and fast == {k: v for k, v in m.items() if k != "mrr"}


def test_the_scorers_memory_layout_changes_no_metric():
    # integer scores (many ties) from a scorer that returns a transposed, column-major [B, I] view, as
    # sparse products do; the evaluation ranks row-major copies, and the metrics must not notice
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (300, 50), generator=gen).float()
    by_column = scores.T.contiguous()  # [I, U]
    targets = UserItems(torch.arange(300).repeat_interleave(2), torch.randint(0, 50, (600,), generator=gen), 300, 50)
    exclude = [UserItems(torch.arange(300), torch.randint(0, 50, (300,), generator=gen), 300, 50)]
    rows, cols = {}, {}
    m_rows = evaluate_ranking(lambda users: scores[users], targets, exclude, batch_size=64, per_user=rows)
    m_cols = evaluate_ranking(lambda users: by_column[:, users].T, targets, exclude, batch_size=64, per_user=cols)
    assert not by_column[:, :3].T.is_contiguous()
    assert m_rows == m_cols
    assert torch.equal(rows["ndcg@10"], cols["ndcg@10"])


def test_history_rows_times_a_matrix_equal_the_dense_product():
    # what EASE^R and item-kNN score with: X[users] W through a CSR matrix of the rows; users in any
    # order, repeated, and one without history (a zero row)
    hist = ui([(0, 1), (0, 3), (2, 0), (2, 1), (2, 4)], n_users=4, n_items=5)
    w = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    users = torch.tensor([2, 1, 0, 2, 3])
    torch.testing.assert_close(hist.times(users, w), hist.dense(users) @ w)
    assert hist.times(users[1:2], w).abs().sum() == 0


def test_a_user_sample_keeps_every_item_of_the_users_it_draws():
    g = torch.Generator().manual_seed(0)
    targets = UserItems(torch.randint(0, 200, (600,), generator=g), torch.randint(0, 50, (600,), generator=g), 200, 50)
    users = torch.unique(targets.users)
    sample = targets.sample_users(40, seed=3)
    kept = torch.unique(sample.users)
    assert kept.numel() == 40 and torch.isin(kept, users).all()
    mask = torch.isin(targets.users, kept)  # every pair of a drawn user, and no other
    assert torch.equal(sample.users, targets.users[mask]) and torch.equal(sample.items, targets.items[mask])
    assert torch.equal(targets.sample_users(40, seed=3).users, sample.users)  # the same draw for the seed
    assert not torch.equal(torch.unique(targets.sample_users(40, seed=4).users), kept)
    assert targets.sample_users(users.numel()) is targets and targets.sample_users(0) is targets


def test_choices_are_made_on_a_sample_of_validation_users_and_reported_on_all(small_demo, tmp_path):
    """--selection-users: training's validation and the path weights rank the sample; metrics.json's
    validation rows rank every validation user."""
    from dataclasses import replace

    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import prepare, run_training

    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, baselines=("ease",),
                      refit=False, selection_users=20, out=str(tmp_path),
                      optim=OptimConfig(epochs=2, batch_size=512, negatives=16, patience=2))
    prep = prepare(cfg, small_demo)
    n_val = torch.unique(prep.val_index.users).numel()
    assert n_val > 20 and torch.unique(prep.val_select.users).numel() == 20
    models = run_training(cfg, small_demo)["models"]
    assert models["rgcn+paths"]["weight_search"]["val_users"] == 20
    assert "paths" not in models  # the paths-alone ablation row only with --paths-ablation
    assert models["rgcn"]["val"]["users"] == models["ease"]["val"]["users"] == n_val
    assert models["ease"]["selection"]  # λ chosen on the sample: a different sample, another trace
    every = run_training(replace(cfg, selection_users=0, out=str(tmp_path / "all")), small_demo)["models"]
    assert every["rgcn+paths"]["weight_search"]["val_users"] == n_val
    assert every["ease"]["selection"] != models["ease"]["selection"]
