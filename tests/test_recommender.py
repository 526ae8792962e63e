"""The recommender path: no leakage, determinism, checkpoint reload in a fresh process."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pandas as pd
import torch

from conftest import REPO
from kgrec.config import OptimConfig, TrainConfig
from kgrec.data.split import split_interactions, unique_pairs
from kgrec.features.build import compute_features
from kgrec.features.text import TextEncoder
from kgrec.train.pipeline import prepare, run_training

TINY = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16,
                   optim=OptimConfig(epochs=3, batch_size=512, negatives=8, patience=3))


def test_split_and_graph_do_not_leak(small_demo):
    cfg = dataclasses.replace(TINY, split="loo")
    prep = prepare(cfg, small_demo)
    users, items = prep.id_maps.index("user"), prep.id_maps.index("product")
    split = split_interactions(small_demo.interactions, "loo", seed=1)
    held = set(zip(users.get_indexer(split.test_pairs["user_id"]), items.get_indexer(split.test_pairs["product_id"])))
    held |= set(zip(users.get_indexer(split.val_pairs["user_id"]), items.get_indexer(split.val_pairs["product_id"])))
    assert held and len(split.test_pairs) > 0
    fwd = prep.data["user", "interacts", "product"].edge_index
    rev = prep.data["product", "interacted_by", "user"].edge_index
    assert not held & set(zip(fwd[0].tolist(), fwd[1].tolist()))
    assert not held & set(zip(rev[1].tolist(), rev[0].tolist()))
    # test pairs are each user's latest
    last = small_demo.interactions.sort_values("timestamp").groupby("user_id").tail(1)
    assert set(zip(split.test_pairs["user_id"], split.test_pairs["product_id"])) <= set(
        zip(last["user_id"], last["product_id"])
    )

    # followed_by: consecutive training products of at least min_support users, nothing held out
    train = split.train_pairs.assign(u=users.get_indexer(split.train_pairs["user_id"]),
                                     i=items.get_indexer(split.train_pairs["product_id"]))
    support: Counter = Counter()
    for _, g in train.groupby("u", sort=False):  # train_pairs are in time order per user
        seq_items = g["i"].tolist()
        support.update({(a, b) for a, b in zip(seq_items, seq_items[1:]) if a != b})
    assert cfg.min_support == 3
    for min_support in (1, 3):
        p = prep if min_support == 3 else prepare(dataclasses.replace(cfg, min_support=1), small_demo)
        seq = p.data["product", "followed_by", "product"].edge_index
        expect = {pair for pair, n in support.items() if n >= min_support}
        assert set(zip(seq[0].tolist(), seq[1].tolist())) == expect and expect
    # co_interacted: at least min_support users chose both products of every edge
    co = prep.data["product", "co_interacted", "product"].edge_index
    chose = train.groupby("i")["u"].apply(set)
    assert co.shape[1] > 0 and all(len(chose[a] & chose[b]) >= 3 for a, b in zip(co[0].tolist(), co[1].tolist()))
    # recently_chose: each user's last recent_products distinct training products, a product chosen again
    # counting at its latest time
    recent = prep.data["user", "recently_chose", "product"].edge_index
    expect = {(u, i) for u, g in train.groupby("u", sort=False)
              for i in list(dict.fromkeys(reversed(g["i"].tolist())))[:cfg.recent_products]}
    assert set(zip(recent[0].tolist(), recent[1].tolist())) == expect and len(expect) == recent.shape[1]
    assert 0 < recent.shape[1] < len(train)


def test_the_with_val_split_trains_on_validation_and_still_holds_out_test(small_demo):
    """``loo+val``: the validation pairs join the training pairs (and their rows the training rows); the
    test pairs and their rows stay out, and nothing else moves."""
    base = split_interactions(small_demo.interactions, "loo", seed=1)
    both = split_interactions(small_demo.interactions, "loo+val", seed=1)
    assert both.strategy == "loo+val" and len(both.val_pairs) == 0
    key = ["user_id", "product_id"]

    def pairs(df):
        return set(map(tuple, df[key].to_numpy()))

    assert pairs(both.test_pairs) == pairs(base.test_pairs) and len(base.test_pairs) > 0
    assert pairs(both.train_pairs) == pairs(base.train_pairs) | pairs(base.val_pairs)
    assert len(both.train_pairs) == len(base.train_pairs) + len(base.val_pairs)
    rows = small_demo.interactions[key].to_numpy()
    test_rows = {i for i, r in enumerate(map(tuple, rows)) if r in pairs(base.test_pairs)}
    assert set(both.train_rows.tolist()) == set(range(len(rows))) - test_rows
    assert set(base.train_rows.tolist()) < set(both.train_rows.tolist())


def test_a_catalog_steps_back_without_its_test_pairs(small_demo):
    """``Catalog.steps_back``: one step back every row of a test pair is gone and nothing else, and the
    validation pairs are the new test pairs (for every user who still has 3 pairs); two steps back the
    test and validation pairs are both training pairs of the full split."""
    key = ["user_id", "product_id"]

    def pairs(df):
        return set(map(tuple, df[key].to_numpy()))

    inter = small_demo.interactions
    base = split_interactions(inter, "loo", seed=1)
    one = small_demo.steps_back(1, "loo", seed=1)
    assert len(one.interactions) == len(base.train_rows) + int(
        pd.MultiIndex.from_frame(inter[key]).isin(pd.MultiIndex.from_frame(base.val_pairs[key])).sum())
    assert not pairs(one.interactions) & pairs(base.test_pairs)
    assert pairs(one.interactions) == pairs(inter) - pairs(base.test_pairs)
    shifted = split_interactions(one.interactions, "loo", seed=1)
    sizes = unique_pairs(one.interactions).groupby("user_id").size()
    still = set(sizes[sizes >= 3].index)
    assert pairs(shifted.test_pairs) == {p for p in pairs(base.val_pairs) if p[0] in still} and still
    two = split_interactions(small_demo.steps_back(2, "loo", seed=1).interactions, "loo", seed=1)
    held = pairs(two.test_pairs) | pairs(two.val_pairs)
    assert held and held <= pairs(base.train_pairs)
    assert small_demo.steps_back(0) is small_demo


def test_features_ignore_held_out_interactions(small_demo):
    """Changing everything about the held-out interactions changes no feature (sentiment, popularity…)."""
    split = split_interactions(small_demo.interactions, "loo", seed=1)
    encoder = TextEncoder()
    base = compute_features(small_demo, split.train_rows, encoder, seed=1)
    tampered = dataclasses.replace(small_demo, tables=dict(small_demo.tables))
    inter = small_demo.interactions.copy()
    held = np.setdiff1d(np.arange(len(inter)), split.train_rows)
    inter.loc[held, "rating"] = 1.0
    inter.loc[held, "text"] = "Utterly terrible, broke at once, awful waste of money."
    tampered.tables["interactions"] = inter
    again = compute_features(tampered, split.train_rows, encoder, seed=1)
    for node in base.x:
        assert np.array_equal(base.x[node], again.x[node]), node
    assert np.array_equal(base.edge_sentiment, again.edge_sentiment)


def test_same_seed_same_metrics(tmp_path, small_demo):
    a = run_training(dataclasses.replace(TINY, out=str(tmp_path / "a"), baselines=("lightgcn",)), small_demo)
    b = run_training(dataclasses.replace(TINY, out=str(tmp_path / "b"), baselines=("lightgcn",)), small_demo)
    for name in a["models"]:
        assert a["models"][name]["test"] == b["models"][name]["test"], name


def test_trained_model_beats_popularity_on_planted_structure(tmp_path, small_demo):
    cfg = dataclasses.replace(
        TINY,
        out=str(tmp_path / "run"),
        baselines=("popularity",),
        hidden=32,
        optim=OptimConfig(epochs=20, batch_size=1024, negatives=16, patience=10),
    )
    m = run_training(cfg, small_demo)["models"]
    assert m["rgcn"]["val"]["ndcg@10"] > m["popularity"]["val"]["ndcg@10"]


def test_recommender_load_in_fresh_process(tmp_path, small_demo):
    from kgrec import Recommender

    out = tmp_path / "run"
    run_training(dataclasses.replace(TINY, out=str(out), baselines=()), small_demo)
    rec = Recommender.load(out)
    users, products = rec.user_ids[:4], rec.product_ids[:7]
    here = rec.score(users, products)
    assert here.shape == (4, 7)
    code = (
        f"import json; from kgrec import Recommender; r = Recommender.load({str(out)!r}); "
        f"print(json.dumps(r.score({users!r}, {products!r}).tolist()))"
    )
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert np.allclose(np.array(json.loads(fresh.stdout)), here, atol=1e-6)
    top = rec.recommend(users[0], k=5)
    assert [r["rank"] for r in top] == [1, 2, 3, 4, 5]
    seen = set(rec.product_ids[i] for i in rec.seen.of(0).tolist())
    assert not seen & {r["product_id"] for r in top}
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)  # safe loading works
    assert ckpt["model"] == "rgcn"


def test_metrics_json_schema(tmp_path, small_demo):
    cfg = dataclasses.replace(TINY, out=str(tmp_path / "run"), model="hgt", baselines=("popularity", "itemknn"),
                              paths_ablation=True)
    run_training(cfg, small_demo)
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"dataset", "split", "seed", "models"} <= set(m)
    # the GNN, its served hybrid with KG path scores, the path scores alone (--paths-ablation), the baselines
    assert set(m["models"]) == {"hgt", "hgt+paths", "paths", "popularity", "itemknn"}
    assert set(m["models"]["hgt+paths"]["weights"]) <= {"co_interacted", "text", "category", "brand", "ease"}
    for row in m["models"].values():
        assert {"val", "test", "epochs", "train_seconds"} <= set(row)
        assert {"recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr", "coverage@10"} <= set(row["test"])
    assert (tmp_path / "run" / "config.json").exists() and list((tmp_path / "run" / "tensorboard").iterdir())


def test_the_refit_trains_only_the_sentiment_method_chosen_on_validation(demo_run):
    """``--sentiment auto`` compares its methods on the first pass; the serving refit trains the chosen one
    again on every review and no other."""
    metrics = json.loads((demo_run / "metrics.json").read_text(encoding="utf-8"))
    chosen = metrics["sentiment"]["method"]
    assert set(metrics["sentiment"]["val_macro_f1_by_method"]) == {"head", "tfidf"}
    served = metrics["served"]["sentiment"]
    assert served["method"] == chosen and list(served["val_macro_f1_by_method"]) == [chosen]
    assert served["reviews"] > metrics["sentiment"]["reviews"]  # validation and test reviews too
