"""Issue 15's hostile inputs: each gets a clear error or a counted repair, never a silent corruption.

Each test names the numbered defect of the issue it covers (#1 … #13).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from conftest import INTERACTIONS, PRODUCTS, run_cli, write
from kgrec.data.catalog import CatalogError
from kgrec.loaders import load_catalog


@pytest.fixture()
def shop(tmp_path):
    write(tmp_path, "products.csv", PRODUCTS)
    write(tmp_path, "interactions.csv", INTERACTIONS)
    return tmp_path


# ---------------------------------------------------------------------------- #1 poisoned prices
@pytest.mark.parametrize("price", ["-5", "inf", "-inf", "1e400"])
def test_bad_price_is_cleared_counted_and_features_stay_finite(tmp_path, price):
    write(tmp_path, "products.csv", PRODUCTS.replace(",9.5,", f",{price},"))
    write(tmp_path, "interactions.csv", INTERACTIONS)
    cat = load_catalog(tmp_path)
    assert np.isnan(cat.products.set_index("product_id").loc["p1", "price"])
    assert sum(v for k, v in cat.report.repaired.items() if "price" in k) == 1
    from kgrec.data.split import split_interactions
    from kgrec.features.build import compute_features

    split = split_interactions(cat.interactions, "loo")
    feats = compute_features(cat, split.train_rows, None, use_text=False, use_sentiment=False)
    assert all(np.isfinite(x).all() for x in feats.x.values())


def test_new_product_without_price_gets_bounded_features(demo_run):
    """A statistic column that is constant in training (every demo product has a price) must not turn a
    new product's feature into ±1e6 (it used to: std 0 + 1e-6)."""
    import torch

    from kgrec.features.build import Z_CLIP
    from kgrec.serve.coldstart import ColdStart, NewProduct

    cs = ColdStart.load(demo_run)
    x, _ = cs.extended_graph([NewProduct("NEW", "A thing")])
    new = x["product"][-1]
    assert torch.isfinite(new).all() and new.abs().max() <= Z_CLIP + 1e-6


def test_a_run_with_non_finite_vectors_is_never_saved(tmp_path, small_demo, monkeypatch):
    import torch

    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.models.gnn import GNNRecommender
    from kgrec.train.pipeline import run_training

    real = GNNRecommender.embed

    def poisoned(self, *args, **kwargs):
        U, I = real(self, *args, **kwargs)
        return U, torch.cat([I[:1] * float("nan"), I[1:]])

    monkeypatch.setattr(GNNRecommender, "embed", poisoned)
    cfg = TrainConfig(data="demo", scale=0.1, seed=1, quiet=True, device="cpu", hidden=8, out=str(tmp_path / "run"),
                      baselines=(), refit=False, paths=False, optim=OptimConfig(epochs=1))
    with pytest.raises(RuntimeError, match="non-finite"):
        run_training(cfg, small_demo)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------- #2 colliding columns
@pytest.mark.parametrize(
    "header,mapping",
    [
        ("user_id,USER_ID,product_id", None),  # case twins
        ("user_id,User_Id,product_id", None),
        (
            "customer,buyer,product_id",
            {"tables": {"interactions": {"columns": {"customer": "user_id", "buyer": "user_id"}}}},
        ),
    ],
)
def test_columns_colliding_after_normalisation_are_an_error(tmp_path, header, mapping):
    write(tmp_path, "interactions.csv", f"{header}\nU1,U9,P1\nU2,U8,P2\n")
    if mapping:
        write(tmp_path, "kgrec_mapping.json", json.dumps(mapping))
    with pytest.raises(CatalogError, match="collide"):
        load_catalog(tmp_path)


def test_jsonl_keys_differing_by_case_are_an_error(tmp_path):
    rows = [
        {"user_id": "U1", "USER_ID": "U9", "product_id": "P1"},
        {"user_id": "U2", "USER_ID": "U8", "product_id": "P2"},
    ]
    write(tmp_path, "interactions.jsonl", "\n".join(json.dumps(r) for r in rows))
    with pytest.raises(CatalogError, match="collide"):
        load_catalog(tmp_path)


# ---------------------------------------------------------------------------- #3 CSV quoting
def test_unterminated_quote_is_an_error_naming_the_line(tmp_path):
    rows = [f"u{i},p{i % 7},purchase,,{1600000000 + i}" for i in range(1000)]
    rows[10] = 'u10,"p3,purchase,,1600000010'  # the quote never closes
    write(tmp_path, "interactions.csv", "user_id,product_id,kind,rating,timestamp\n" + "\n".join(rows) + "\n")
    with pytest.raises(CatalogError, match=r"line 12 opens a quoted field that is never closed"):
        load_catalog(tmp_path)


def test_a_field_over_128_kb_loads_and_is_truncated_counted(shop):
    long = "word " * 40_000  # 200 KB, past Python csv's default 128 KB field limit
    write(
        shop,
        "interactions.csv",
        INTERACTIONS.replace(
            "user_id,product_id,kind,rating,timestamp", "user_id,product_id,kind,rating,timestamp,text"
        )
        .replace("u1,p1,purchase,,1600000000", f'u1,p1,purchase,,1600000000,"{long}"')
        .replace("1600000100\n", "1600000100,\n")
        .replace("1600000200\n", "1600000200,\n"),
    )
    cat = load_catalog(shop)
    assert len(cat.interactions) == 3 and cat.report.repaired["text_truncated"] == 1


# ---------------------------------------------------------------------------- #4 types and id forms
def test_parquet_datetimes_are_epoch_seconds(tmp_path):
    ts = pd.to_datetime(["2020-01-01 00:00:00", "2021-06-01 12:00:00"])
    pd.DataFrame({"user_id": ["u1", "u2"], "product_id": ["p1", "p2"], "timestamp": ts}).to_parquet(
        tmp_path / "interactions.parquet"
    )
    cat = load_catalog(tmp_path)
    assert cat.interactions["timestamp"].tolist() == [1577836800, 1622548800]
    assert not any("timestamp" in k for k in cat.report.repaired)


def test_float_ids_match_integer_ids(tmp_path):
    pd.DataFrame({"product_id": [1, 2], "title": ["a", "b"]}).to_parquet(tmp_path / "products.parquet")
    pd.DataFrame({"user_id": [7.0, 8.0], "product_id": [1.0, 2.0]}).to_parquet(tmp_path / "interactions.parquet")
    cat = load_catalog(tmp_path)
    assert set(cat.interactions["product_id"]) == {"1", "2"} == set(cat.products["product_id"])
    assert "product_without_metadata" not in cat.report.repaired
    assert set(cat.users["user_id"]) == {"7", "8"}


def test_unicode_twins_and_nul_bytes_in_ids_are_one_id_and_counted(tmp_path):
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    write(tmp_path, "interactions.csv", f"user_id,product_id,timestamp\n{nfc},p1,1\n{nfd},p2,2\nu\x002,p1,3\nu2,p2,4\n")
    cat = load_catalog(tmp_path)
    assert set(cat.interactions["user_id"]) == {nfc, "u2"}
    assert cat.report.repaired["user_id_unicode_normalised"] == 1
    assert cat.report.repaired["user_id_control_characters_removed"] == 1


# ---------------------------------------------------------------------------- #11 bounded reading, paths
def test_gzip_bomb_is_refused(tmp_path, monkeypatch):
    import kgrec.loaders._io as io_mod

    monkeypatch.setattr(io_mod, "MAX_FILE_BYTES", 1 << 20)
    body = "user_id,product_id\n" + "u1,p1\n" * 400_000  # 2.4 MB unpacked, a few KB packed
    write(tmp_path, "interactions.csv.gz", body)
    assert (tmp_path / "interactions.csv.gz").stat().st_size < 50_000
    with pytest.raises(CatalogError, match="more than 1,048,576 bytes"):
        load_catalog(tmp_path)


def test_mapping_cannot_reach_outside_the_export(tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("user_id,product_id\nu1,p1\n")
    shop = tmp_path / "shop"
    write(shop, "kgrec_mapping.json", json.dumps({"tables": {"interactions": {"file": "../secret.csv"}}}))
    with pytest.raises(CatalogError, match="outside the export folder"):
        load_catalog(shop)


def test_symlink_out_of_the_export_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("user_id,product_id\nu1,p1\n")
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "interactions.csv").symlink_to(outside)
    with pytest.raises(CatalogError, match="outside the export folder"):
        load_catalog(shop)


def test_a_fifo_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "interactions.csv")
    with pytest.raises(CatalogError, match="not a regular file"):
        load_catalog(tmp_path)


# ---------------------------------------------------------------------------- #12 triples-only export
def test_kgat_style_export_without_categories_trains(tmp_path):
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(60)]
    rows = [(u, f"i{rng.integers(0, 40)}", t) for u in users for t in range(6)]
    pd.DataFrame(rows, columns=["user_id", "product_id", "timestamp"]).drop_duplicates(
        ["user_id", "product_id"]
    ).to_csv(tmp_path / "interactions.csv", index=False)
    pd.DataFrame({"product_id": [f"i{k}" for k in range(40)]}).to_csv(tmp_path / "products.csv", index=False)
    pd.DataFrame(
        {"head": [f"i{k}" for k in range(40)], "relation": "genre", "tail": [f"g{k % 5}" for k in range(40)]}
    ).to_csv(tmp_path / "triples.csv", index=False)
    out = run_cli(
        "train",
        "--data",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "2",
        "--quiet",
        "--no-text",
        "--no-sentiment",
        "--device",
        "cpu",
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------- #13 no raw tracebacks
def test_infinity_timestamps_in_jsonl_are_cleared_counted(tmp_path):
    lines = [
        '{"user_id": "u1", "product_id": "p1", "timestamp": Infinity}',
        '{"user_id": "u2", "product_id": "p1", "timestamp": -Infinity}',
        '{"user_id": "u2", "product_id": "p2", "timestamp": 1600000000}',
    ]
    write(tmp_path, "interactions.jsonl", "\n".join(lines))
    cat = load_catalog(tmp_path)
    assert cat.interactions["timestamp"].isna().sum() == 2
    assert cat.report.repaired["non_finite_timestamp_cleared"] == 2


def test_infinity_timestamps_in_amazon_files_are_cleared_counted(tmp_path):
    reviews = [
        {"reviewerID": "u1", "asin": "a1", "overall": 5, "unixReviewTime": float("inf")},
        {"user_id": "u2", "parent_asin": "a1", "rating": 4, "timestamp": "Infinity"},
        {"reviewerID": "u2", "asin": "a2", "overall": 3, "unixReviewTime": 1600000000},
    ]
    write(tmp_path, "Shop_5.json", "\n".join(json.dumps(r) for r in reviews))
    write(tmp_path, "meta_Shop.json", json.dumps({"asin": "a1", "title": "A"}))
    cat = load_catalog(tmp_path)
    assert cat.report.repaired["non_finite_timestamp_cleared"] == 2
    assert cat.interactions["timestamp"].notna().sum() == 1


def test_deeply_nested_json_is_a_counted_skip(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    lines = ['{"user_id": "u1", "product_id": "p1"}', '{"user_id": "u2", "product_id": "p1", "x": ' + deep + "}"]
    write(tmp_path, "interactions.jsonl", "\n".join(lines))
    cat = load_catalog(tmp_path)
    assert len(cat.interactions) == 1 and cat.report.skipped["malformed_json_line"] == 1


@pytest.mark.parametrize(
    "mapping", ["[]", '"products"', '{"tables": []}', '{"tables": {"products": {"columns": ["a"]}}}']
)
def test_malformed_mapping_is_a_clear_error(shop, mapping):
    write(shop, "kgrec_mapping.json", mapping)
    with pytest.raises(CatalogError, match="mapping|tables"):
        load_catalog(shop)


@pytest.mark.parametrize("args", [["-k", "-3"], ["-k", "0"]])
def test_negative_k_is_a_clear_error(demo_run, args):
    from kgrec import Recommender

    user = Recommender.load(demo_run).user_ids[0]
    out = run_cli("recommend", str(demo_run), "--user", user, *args)
    assert out.returncode != 0 and "Traceback" not in out.stderr and "-k" in out.stderr


def test_negative_top_is_a_clear_error(demo_run):
    from kgrec import Recommender

    rec = Recommender.load(demo_run)
    out = run_cli("explain", str(demo_run), "--user", rec.user_ids[0], "--product", rec.product_ids[0], "--top", "-1")
    assert out.returncode != 0 and "Traceback" not in out.stderr and "--top" in out.stderr


def test_truncated_checkpoint_is_a_clear_error(demo_run, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(demo_run, broken)
    data = (broken / "checkpoint.pt").read_bytes()
    (broken / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    out = run_cli("recommend", str(broken), "--user", "U000001")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "checkpoint.pt" in out.stderr and ("damaged" in out.stderr or "truncated" in out.stderr)


@pytest.mark.slow
def test_json_output_never_holds_nan(demo_run):
    from kgrec import Recommender

    rec = Recommender.load(demo_run)
    user = rec.user_ids[0]
    for args in (
        ["recommend", str(demo_run), "--user", user, "-k", "5"],
        ["evaluate", str(demo_run)],
        ["profile", str(demo_run), "--user", user],
    ):
        out = run_cli(*args, "--json")
        assert out.returncode == 0, out.stderr[-2000:]
        json.loads(out.stdout, parse_constant=lambda c, cmd=args[0]: pytest.fail(f"{cmd} --json printed {c}"))
