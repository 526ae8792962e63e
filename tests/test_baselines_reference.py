"""The baselines reproduce the reference numbers of ../shared/datasets/README.md on the same split.

A baseline trained worse than its published recipe would make every comparison flattering, so these
tests pin kgrec's EASE and LightGCN to the independent harness's magazine numbers (test NDCG@10,
temporal leave-one-out, full ranking): EASE^R 0.1778 (λ on validation), LightGCN 0.1171 (3 seeds).
"""
from __future__ import annotations

import dataclasses

import pytest

from kgrec.config import TrainConfig
from kgrec.train.evaluate import evaluate_ranking
from kgrec.train.pipeline import fit_model, prepare, scorer


@pytest.fixture(scope="module")
def magazine_prep(magazine):
    cfg = TrainConfig(data=str(magazine), quiet=True, device="cpu", sentiment=False)
    return cfg, prepare(cfg)


def _test_ndcg(name: str, cfg: TrainConfig, prep) -> tuple[float, dict]:
    import torch

    model, info, inputs = fit_model(name, prep, cfg, torch.device("cpu"))
    score = scorer(name, model, inputs, torch.device("cpu"))
    return evaluate_ranking(score, prep.test_index, [prep.train_index, prep.val_index])["ndcg@10"], info


def test_lightgcn_recipe_is_the_papers():
    from kgrec.models.baselines import LightGCNModel

    recipe = LightGCNModel.recipe(1_000_000)
    assert (recipe.loss, recipe.lr, recipe.l2, recipe.negatives, recipe.batch_size) == ("bpr", 1e-3, 1e-5, 1, 2048)
    assert recipe.epochs == 1000 and recipe.patience >= 200  # a slow start is not a stop (see the recipe)
    model = LightGCNModel(10, 20)
    assert model.model.embedding_dim == 64 and model.model.num_layers == 3
    small = LightGCNModel.recipe(1_600)  # a small shop still gets LightGCN.MIN_STEPS steps per epoch
    assert small.batch_size == 64


@pytest.mark.slow
def test_ease_reproduces_the_reference_harness(magazine_prep):
    cfg, prep = magazine_prep
    ndcg, info = _test_ndcg("ease", cfg, prep)
    assert info["lambda"] in (5.0, 20.0)  # the validation choice (the harness chose 5; 20 ties it on validation)
    assert ndcg == pytest.approx(0.1778, abs=0.01)


@pytest.mark.slow
def test_lightgcn_reproduces_the_reference_harness(magazine_prep):
    cfg, prep = magazine_prep
    # reference: 0.1171 over 3 seeds; seed 1 stopped at 0.059 when the patience was 50 epochs
    ndcg, info = _test_ndcg("lightgcn", dataclasses.replace(cfg, seed=1), prep)
    assert ndcg > 0.10, info
