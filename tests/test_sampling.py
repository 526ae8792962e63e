"""Neighbour-sampled mini-batch training (kgrec.train.sampling): the subgraph indexing of the models, the
clear error where PyG cannot sample, and (where pyg-lib or torch-sparse is installed) metrics close to
full-graph training."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import run_cli


def _small_graph(small_demo):
    from kgrec.data.graph import build_graph
    from kgrec.data.split import split_interactions
    from kgrec.features.build import compute_features

    split = split_interactions(small_demo.interactions, "loo", seed=1)
    feats = compute_features(small_demo, split.train_rows, None, use_text=False, use_sentiment=False, seed=1)
    data, _ = build_graph(small_demo, feats, split.train_rows)
    return data


@pytest.mark.parametrize("name", ["rgcn", "hgt"])
def test_subgraph_with_n_id_equals_the_full_graph(small_demo, name):
    """A "subgraph" holding every node in a shuffled order, with its edges relabelled, must embed each
    node exactly as the full graph does: id embeddings and product biases follow ``n_id``."""
    from kgrec.models import MODELS

    data = _small_graph(small_demo)
    torch.manual_seed(0)
    model = MODELS[name](data, hidden=16, layers=2, dropout=0.0).eval()
    torch.nn.init.normal_(model.item_bias, std=0.1)  # starts at zero; values that would show a mix-up
    perm = {t: torch.randperm(data[t].num_nodes) for t in data.node_types}  # row r of the subgraph = node perm[r]
    inv = {t: torch.argsort(p) for t, p in perm.items()}
    x = {t: data[t].x[perm[t]] for t in data.node_types}
    edges = {et: torch.stack([inv[et[0]][ei[0]], inv[et[2]][ei[1]]]) for et, ei in data.edge_index_dict.items()}
    with torch.no_grad():
        U, I = model.embed(data.x_dict, data.edge_index_dict)
        Us, Is = model.embed(x, edges, perm)
    torch.testing.assert_close(Us, U[perm["user"]], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(Is, I[perm["product"]], atol=1e-5, rtol=1e-4)


def test_without_a_sampler_the_error_says_what_to_install(monkeypatch):
    import torch_geometric.typing as pyg_typing

    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    monkeypatch.setattr(pyg_typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(pyg_typing, "WITH_TORCH_SPARSE", False)
    with pytest.raises(RuntimeError, match=r"pyg-lib.*torch-sparse.*pip install"):
        run_training(TrainConfig(data="demo", scale=0.1, quiet=True, optim=OptimConfig(neighbours=(10, 10))))


def test_neighbours_flag_is_validated():
    from kgrec.train.sampling import parse_fanout

    assert parse_fanout("10,5") == (10, 5) and parse_fanout("-1") == (-1,)
    for bad in ("", "10,x", "0,5", "-3"):
        with pytest.raises(ValueError, match="--neighbours"):
            parse_fanout(bad)
    out = run_cli("train", "--neighbours", "10,abc", "--quiet")
    assert out.returncode != 0 and "--neighbours" in out.stderr and "Traceback" not in out.stderr


def test_fanout_count_must_match_the_layers(small_demo):
    from kgrec.train.sampling import neighbour_sampler_available

    if not neighbour_sampler_available():
        pytest.skip("needs pyg-lib or torch-sparse (see the README's mini-batch section)")
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    with pytest.raises(ValueError, match="one per layer"):
        run_training(TrainConfig(data="demo", scale=0.1, quiet=True, baselines=(), layers=2,
                                 optim=OptimConfig(neighbours=(10,), epochs=1)), small_demo)


def test_minibatch_training_reaches_full_graph_metrics(tmp_path, small_demo):
    """Tolerance: on the small demo (seed 1), the neighbour-sampled R-GCN's validation and test NDCG@10
    are within 0.02 absolute of full-graph training with the same settings, or above it."""
    from kgrec.train.sampling import neighbour_sampler_available

    if not neighbour_sampler_available():
        pytest.skip("needs pyg-lib or torch-sparse (see the README's mini-batch section)")
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    base = TrainConfig(
        data="demo",
        scale=0.1,
        seed=1,
        quiet=True,
        device="cpu",
        hidden=32,
        baselines=(),
        paths=False,
        out=str(tmp_path / "full"),
        optim=OptimConfig(epochs=40, patience=10, batch_size=512),
    )
    full = run_training(base, small_demo)["models"]["rgcn"]
    sampled_cfg = dataclasses.replace(
        base, out=str(tmp_path / "sampled"), optim=dataclasses.replace(base.optim, neighbours=(10, 10))
    )
    sampled = run_training(sampled_cfg, small_demo)["models"]["rgcn"]
    for split in ("val", "test"):
        assert sampled[split]["ndcg@10"] >= full[split]["ndcg@10"] - 0.02, (split, sampled[split], full[split])


def test_minibatch_under_ddp_two_processes(tmp_path):
    """``torchrun`` with 2 gloo processes and ``--neighbours``: each process samples its own shard of the
    training edges; the run completes on both ranks, rank 0 writes the run, and the loss falls."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO
    from kgrec.train.sampling import neighbour_sampler_available

    if not neighbour_sampler_available():
        pytest.skip("needs pyg-lib or torch-sparse (see the README's mini-batch section)")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "train.py",
            "--scale",
            "0.1",
            "--seed",
            "1",
            "--epochs",
            "6",
            "--baselines",
            "",
            "--hidden",
            "16",
            "--batch-size",
            "512",
            "--device",
            "cpu",
            "--no-paths",
            "--quiet",
            "--neighbours",
            "10,10",
            "--out",
            str(tmp_path / "run"),
        ],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    curve = metrics["models"]["rgcn"]["curve"]
    assert metrics["processes"] == 2 and len(curve) == 6
    assert curve[-1]["loss"] < curve[0]["loss"]
    assert metrics["models"]["rgcn"]["test"]["ndcg@10"] > 0
