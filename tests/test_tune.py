"""kgrec tune: a validation search that starts from the defaults, is deterministic, and records itself."""
from __future__ import annotations

import dataclasses
import json

import pytest

from conftest import run_cli
from kgrec.config import OptimConfig, TrainConfig
from kgrec.errors import KgrecError
from kgrec.train.tune import defaults, space_for, tune, tuned_config

pytest.importorskip("optuna")

TINY = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=16, baselines=(),
                   optim=OptimConfig(epochs=4, batch_size=512, negatives=8, patience=4))


def test_search_starts_from_the_defaults_and_keeps_the_best(small_demo):
    result = tune(TINY, trials=4, catalog=small_demo, progress=False)
    assert len(result.trials) == 4
    assert result.trials[0]["params"] == defaults(TINY)
    assert result.default_val == result.trials[0]["val_ndcg@10"]
    done = [t["val_ndcg@10"] for t in result.trials if t["state"] == "complete"]
    assert result.best_val == max(done) >= result.default_val
    best = tuned_config(TINY, result)
    assert best.optim.temperature == (pytest.approx(result.best["temperature"]),)
    assert (best.hidden, best.layers, best.min_support, best.recent_products) == (
        result.best["hidden"], result.best["layers"], result.best["min_support"], result.best["recent_products"])
    assert (best.relations == ()) == (not result.best["kg_relations"])
    space = space_for(TINY)
    assert 16 in space["hidden"][1]  # the run's own width (outside the default choices) is a choice
    assert best.history_tower == result.best.get("history_tower", 0.0)
    for t in result.trials[1:]:  # every sampled setting lies in the declared space
        # the history tower is a choice exactly where the trial's graph has recently_chose
        has_recent = t["params"]["kg_relations"] and t["params"]["recent_products"] > 0
        assert ("history_tower" in t["params"]) == has_recent, t["params"]
        for name, (kind, bounds) in space.items():
            if name not in t["params"]:
                continue
            value = t["params"][name]
            assert value in bounds if kind == "choice" else bounds[0] <= value <= bounds[1], (name, value)


def test_same_seed_same_search(small_demo):
    a = tune(TINY, trials=3, catalog=small_demo, progress=False)
    b = tune(TINY, trials=3, catalog=small_demo, progress=False)
    assert [(t["params"], t["val_ndcg@10"]) for t in a.trials] == [(t["params"], t["val_ndcg@10"]) for t in b.trials]


def test_only_gnns_are_tuned(small_demo):
    with pytest.raises(KgrecError, match="--model"):
        tune(dataclasses.replace(TINY, model="ease"), trials=2, catalog=small_demo, progress=False)


def test_cli_trains_the_run_with_the_chosen_settings(tmp_path):
    out = tmp_path / "run"
    res = run_cli("tune", "--scale", "0.1", "--seed", "1", "--hidden", "16", "--epochs", "3", "--batch-size", "512",
                  "--negatives", "8", "--baselines", "popularity", "--trials", "2", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert "trial 0 is the defaults" in res.stdout and "val ndcg@10" in res.stdout
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    tuning = json.loads((out / "metrics.json").read_text(encoding="utf-8"))["tuning"]
    assert len(tuning["trials"]) == 2
    assert config["optim"]["temperature"] == [pytest.approx(tuning["best"]["temperature"])]
    assert config["hidden"] == tuning["best"]["hidden"] and config["min_support"] == tuning["best"]["min_support"]


def test_min_support_matters_only_with_a_derived_relation():
    """Trials that differ only in min_support (or recent_products) share a prepared graph when no derived
    relation that it changes is kept."""
    from kgrec.train.tune import _graph_key, _keeps_derived

    assert _keeps_derived(TrainConfig())
    assert _keeps_derived(TrainConfig(relations=("followed_by",)))
    assert not _keeps_derived(TrainConfig(relations=()))
    assert not _keeps_derived(TrainConfig(relations=("recently_chose",)))  # every user's last products: no threshold
    assert not _keeps_derived(TrainConfig(relations=("in_category", "made_by")))
    assert _graph_key(TrainConfig(recent_products=1)) != _graph_key(TrainConfig(recent_products=3))
    assert _graph_key(TrainConfig(relations=("recently_chose",), min_support=1)) == \
        _graph_key(TrainConfig(relations=("recently_chose",), min_support=2))
    assert _graph_key(TrainConfig(relations=("followed_by",), recent_products=1)) == \
        _graph_key(TrainConfig(relations=("followed_by",), recent_products=5))


def test_the_history_tower_is_searched_only_where_its_relation_is():
    """A trial's history tower reads ``recently_chose``: without that relation (recent_products 0, the
    relations off, or a relation list without it) the trial trains with the tower off."""
    from kgrec.train.tune import apply

    params = {**defaults(TrainConfig()), "history_tower": 1.0}
    assert apply(TrainConfig(), params).history_tower == 1.0
    assert apply(TrainConfig(), {**params, "recent_products": 0}).history_tower == 0.0
    assert apply(TrainConfig(), {**params, "kg_relations": False}).history_tower == 0.0
    assert apply(TrainConfig(relations=("followed_by",)), params).history_tower == 0.0
    assert apply(TrainConfig(), {**params, "history_tower": 0.0}).history_tower == 0.0
