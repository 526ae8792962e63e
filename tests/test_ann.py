"""The approximate top-K path (kgrec.serve.ann): exact candidate scores, recall against exact ranking,
seen products never returned, the index file's life cycle."""
from __future__ import annotations

import shutil

import pytest
import torch

from conftest import run_cli
from kgrec.errors import RunError
from kgrec.serve import ann
from kgrec.serve.recommend import Recommender


def test_hybrid_scores_at_candidates_equal_the_full_rows(demo_run):
    """Every term of the served blend, computed at some products only, equals the full-row z-score there."""
    rec = Recommender.load(demo_run)
    hybrid = rec.hybrid
    assert hybrid is not None and hybrid.vectors is not None
    hybrid.weights = {name: 1.0 for name in hybrid.prior.parts}  # every path relation, whatever was chosen
    users = torch.arange(min(40, len(rec.user_ids)))
    n = len(rec.product_ids)
    items = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(int(u)))[:25] for u in users])
    full = hybrid(users)  # [B, I]
    at = hybrid.score_at(users, items)  # [B, 25]
    torch.testing.assert_close(at, full.gather(1, items), atol=2e-4, rtol=1e-4)
    parts = hybrid.prior.scores(users)
    for name, part in hybrid.prior.scores_at(users, items).items():
        from kgrec.models.paths import zscore

        torch.testing.assert_close(part, zscore(parts[name]).gather(1, items), atol=2e-4, rtol=1e-4, msg=name)


def test_index_recall_and_seen_products(demo_run, tmp_path, monkeypatch):
    """With the index forced on a small catalog and no candidate margin (the index and the path relations
    propose about 40 % of the products; from the index alone recall was 0.57 here): recall@10 of the
    exact top-10 ≥ 0.95, the same scores as exact for what is returned, never a seen product."""
    monkeypatch.setattr(ann, "ANN_MARGIN", 0)
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    result = run_cli("index", str(run))
    assert result.returncode == 0, result.stderr
    assert (run / ann.INDEX_FILE).is_file()
    rec = Recommender.load(run)
    assert rec.run.ann is not None
    hits, total = 0, 0
    for u in range(len(rec.user_ids)):
        seen = set(rec.seen.of(u).tolist())
        approx_scores, approx = rec.top_k(u, 10)
        exact_scores, exact = rec.top_k(u, 10, exact=True)
        assert not seen & set(approx.tolist())
        assert len(set(approx.tolist())) == approx.numel()
        full = rec.score_matrix(torch.tensor([u]))[0]
        torch.testing.assert_close(approx_scores, full[approx], atol=2e-4, rtol=1e-4)
        hits += len(set(approx.tolist()) & set(exact.tolist()))
        total += exact.numel()
    assert hits / total >= 0.95
    rows = rec.recommend(rec.user_ids[0], k=5, reasons=False)
    assert [r["product_id"] for r in rows] == [rec.product_ids[i] for i in rec.top_k(0, 5)[1].tolist()]


def test_index_that_does_not_fit_the_run_is_refused(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    items = Recommender.load(run).ckpt["item_emb"]
    ann.ProductIndex.build(items[:-1]).save(run / ann.INDEX_FILE)  # one product short
    with pytest.raises(RunError, match="delete it"):
        _ = Recommender.load(run).run.ann
    (run / ann.INDEX_FILE).write_bytes(b"not an index")
    with pytest.raises(RunError, match="damaged"):
        _ = Recommender.load(run).run.ann


def test_small_catalogs_score_exactly_without_an_index(demo_run):
    rec = Recommender.load(demo_run)
    assert not ann.wants_index(len(rec.product_ids))
    assert rec.run.ann is None
