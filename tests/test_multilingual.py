"""Chinese and multilingual shops: encoder choice, the multilingual encoder, TF-IDF sentiment on real
Chinese reviews, sentiment labels from the export, GB18030 exports, and the Chinese demo shop end to end
(loaders, training, recommend, explain, search, Neo4j round trip, the HTML report in Chromium)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import SHARED, run_cli, write
from kgrec.features.sentiment import LABEL_INDEX, TfidfSentiment, macro_f1, train_tfidf_sentiment
from kgrec.features.text import TextEncoder, choose_encoder, latin_share
from kgrec.loaders import load_catalog

ZH_REVIEWS = SHARED / "zh-online-shopping-reviews" / "online_shopping_10_cats.csv.gz"


def test_auto_chooses_the_encoder_by_script():
    zh = ["蒙牛 纯牛奶 250ml", "华为 智能手机 Pro", "李宁 跑步鞋 男款"]
    en = ["Red mug with saucer", "Trail running shoes, size 42", "Café crème grinder"]
    assert latin_share(zh) < 0.5 < latin_share(en)
    assert choose_encoder("auto", zh)[0] == "use-multilingual"
    assert choose_encoder("auto", en)[0] == "minilm"
    assert choose_encoder("default", zh) == ("minilm", "given")  # the name older runs recorded
    assert choose_encoder("/models/my-bert", zh) == ("/models/my-bert", "given")
    with pytest.raises(ValueError, match="choose_encoder"):
        TextEncoder("auto")


def test_the_multilingual_encoder_embeds_chinese_offline_and_caches(tmp_path):
    enc = TextEncoder("use-multilingual", cache_dir=tmp_path)
    texts = ["蒙牛纯牛奶", "伊利 纯牛奶 250ml×24盒", "联想 轻薄笔记本电脑", "", "Trail running shoes"]
    x = enc(texts)
    assert x.shape == (5, 512) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert x[0] @ x[1] > x[0] @ x[2] + 0.1  # milk is nearer milk than a laptop
    assert enc.encoded_last_call == 5
    assert np.array_equal(enc(texts), x) and enc.encoded_last_call == 0
    assert enc.identity.startswith("use-multilingual-v3-") and not enc.is_transformers


def _zh_reviews(n: int) -> pd.DataFrame:
    if not ZH_REVIEWS.exists():
        pytest.skip(f"{ZH_REVIEWS} is absent")
    df = pd.read_csv(ZH_REVIEWS, dtype={"cat": str, "review": str}, keep_default_na=False)
    df = df[df["review"].str.strip().str.len() > 0]
    return df.sample(n=n, random_state=0).reset_index(drop=True)


def test_tfidf_sentiment_reads_chinese_reviews_and_reloads(tmp_path):
    df = _zh_reviews(3000)
    texts = df["review"].tolist()
    labels = np.where(df["label"].to_numpy() == 1, LABEL_INDEX["positive"], LABEL_INDEX["negative"])
    test, train = np.arange(600), np.arange(600, len(df))
    model = train_tfidf_sentiment([texts[i] for i in train], labels[train], seed=0)
    pred = model.proba([texts[i] for i in test]).argmax(1)
    assert macro_f1(labels[test], pred) >= 0.85  # 0.93 on 5,500 reviews: benchmarks/multilingual.py
    model.save(tmp_path / "m", {"data": "zh sample"})
    again = TfidfSentiment.load(tmp_path / "m")
    sample = [texts[i] for i in test[:50]]
    assert np.allclose(again.score(sample), model.score(sample))
    card = json.loads((tmp_path / "m" / "card.json").read_text(encoding="utf-8"))
    assert card["method"] == "tfidf" and "TF-IDF" in (tmp_path / "m" / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("column, values, expected", [
    ("label", ["1", "0", "1", "x"], ["positive", "negative", "positive", None]),
    ("sentiment", ["-1", "0", "1", "1"], ["negative", "neutral", "positive", "positive"]),
    ("polarity", ["好评", "差评", "中评", "pos"], ["positive", "negative", "neutral", "positive"]),
])
def test_a_labels_column_is_the_sentiment_signal(tmp_path, column, values, expected):
    write(tmp_path, "products.csv", "product_id,title\np1,蒙牛纯牛奶\np2,联想笔记本\n")
    rows = "\n".join(f"u{i},p{1 + i % 2},review,好用{i},{v}" for i, v in enumerate(values))
    write(tmp_path, "interactions.csv", f"user_id,product_id,kind,text,{column}\n{rows}\n")
    cat = load_catalog(tmp_path)
    assert cat.interactions["sentiment"].tolist() == expected
    assert cat.report.repaired.get("unparseable_sentiment_cleared", 0) == expected.count(None)


def test_reviews_labelled_without_ratings_train_the_sentiment_report(tmp_path):
    df = _zh_reviews(400)
    write(tmp_path, "products.csv", "product_id,title\n" + "\n".join(f"p{c},{c}商品" for c in df["cat"].unique()))
    inter = pd.DataFrame({"user_id": [f"u{i}" for i in range(len(df))], "product_id": "p" + df["cat"],
                          "kind": "review", "text": df["review"], "label": df["label"]})
    inter.to_csv(tmp_path / "interactions.csv", index=False)
    out = run_cli("features", str(tmp_path), "--out", str(tmp_path / "f"), "--sentiment", "tfidf", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["encoder"].startswith("use-multilingual")  # auto, from the Chinese titles
    rep = result["sentiment_report"]
    assert rep["method"] == "tfidf" and {"head", "tfidf"} <= set(rep["methods"])
    assert rep["n_train"] + rep["n_test"] == 400 and rep["spearman_score_rating"] is None
    assert rep["trained"]["macro_f1"] > rep["majority"]["macro_f1"]


def test_gb18030_chinese_export_loads_like_utf8(tmp_path):
    products = ("product_id,title,brand,categories\n"
                "p1,蒙牛 纯牛奶,蒙牛,食品饮料 > 牛奶乳品\np2,华为 手机,华为,数码电子 > 手机\n")
    inter = "user_id,product_id,kind,rating,text\n小王,p1,review,5,很好喝，还会回购\n小李,p2,review,1,质量太差\n"
    write(tmp_path / "u", "products.csv", products)
    write(tmp_path / "u", "interactions.csv", inter)
    utf8 = load_catalog(tmp_path / "u")
    write(tmp_path / "g", "products.csv", products.encode("gb18030"))
    write(tmp_path / "g", "interactions.csv", inter.encode("gb18030"))
    gb = load_catalog(tmp_path / "g")
    for name in ("products", "interactions", "categories", "brands"):
        pd.testing.assert_frame_equal(gb.tables[name], utf8.tables[name])
    assert all(v.startswith("gb18030") for v in gb.report.encodings.values()) and len(gb.report.encodings) == 2
    assert gb.products["title"].tolist() == ["蒙牛 纯牛奶", "华为 手机"]


# ---------------------------------------------------------------------------- the Chinese demo shop
@pytest.fixture(scope="module")
def zh_catalog():
    return load_catalog("demo", scale=0.2, seed=3, locale="zh")


@pytest.fixture(scope="module")
def zh_run(tmp_path_factory, zh_catalog):
    from kgrec.config import OptimConfig, TrainConfig
    from kgrec.train.pipeline import run_training

    out = tmp_path_factory.mktemp("zh-run")
    run_training(TrainConfig(data="demo", locale="zh", scale=0.2, seed=3, quiet=True, device="cpu", out=str(out),
                             baselines=("itemknn",), optim=OptimConfig(epochs=20, patience=5)), zh_catalog)
    return out


def test_the_chinese_demo_shop_is_chinese(zh_catalog):
    assert latin_share(zh_catalog.products["title"].tolist()) < 0.3
    assert "蒙牛" in zh_catalog.brands["name"].tolist()
    assert any("纯牛奶" in t for t in zh_catalog.products["title"])
    assert zh_catalog.categories["category_id"].str.contains(" > ").any()
    reviews = zh_catalog.interactions[zh_catalog.interactions["text"].notna()]
    assert reviews["sentiment"].notna().all()
    if ZH_REVIEWS.exists():  # real review texts for the matching categories
        assert "real reviews from online_shopping_10_cats" in zh_catalog.source


@pytest.mark.slow
def test_the_chinese_demo_trains_recommends_explains_and_searches(zh_run):
    cfg = json.loads((zh_run / "config.json").read_text(encoding="utf-8"))
    assert cfg["encoder"] == "use-multilingual" and "not Latin script" in cfg["encoder_choice"]
    metrics = json.loads((zh_run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["sentiment"]["enabled"] and metrics["sentiment"]["method"] in ("head", "tfidf")
    from kgrec import Recommender

    rec = Recommender.load(zh_run)
    user = rec.user_ids[0]
    top = rec.recommend(user, k=3)
    out = run_cli("explain", str(zh_run), "--user", user, "--product", top[0]["product_id"], "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    paths = json.loads(out.stdout)["paths"]
    # the sentences name the Chinese products (the sentence frame is English)
    assert paths and all(any("\u4e00" <= ch <= "\u9fff" for ch in p["sentence"]) for p in paths)
    out = run_cli("search", str(zh_run), "蒙牛纯牛奶", "-k", "3", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    hits = json.loads(out.stdout)["results"]
    assert all("奶" in h["title"] for h in hits)  # milk, whatever the brand


@pytest.mark.neo4j
def test_chinese_properties_round_trip_through_neo4j(neo4j_driver, neo4j_config, zh_catalog):
    from kgrec.neo4j.importer import import_catalog
    from kgrec.neo4j.readback import read_catalog

    import_catalog(zh_catalog, neo4j_driver)
    back = read_catalog(neo4j_config)
    assert back.equals(zh_catalog)
    recs, _, _ = neo4j_driver.execute_query("MATCH (p:Product) WHERE p.title CONTAINS $w RETURN count(p) AS n",
                                            w="蒙牛")
    assert recs[0]["n"] > 0


@pytest.mark.slow
def test_the_report_renders_chinese_text_in_chromium(zh_run, tmp_path, browser):
    out = tmp_path / "report.html"
    res = run_cli("report", str(zh_run), "--out", str(out), "--users", "1")
    assert res.returncode == 0, res.stderr
    page = browser.new_page()
    page.goto(out.as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
    cells = page.eval_on_selector_all("#users table td", "els => els.map(e => e.innerText)")
    assert any("\u4e00" <= ch <= "\u9fff" for cell in cells for ch in cell), cells[:10]
    # the Chinese text is laid out (a cell with width); the screenshot is kept for a person to look at
    width = page.evaluate("""() => { const td = [...document.querySelectorAll('#users table td')]
        .find(e => /[\u4e00-\u9fff]/.test(e.innerText)); return td.getBoundingClientRect().width; }""")
    assert width > 20
    page.screenshot(path=str(tmp_path / "report-zh.png"), full_page=True)
    assert (tmp_path / "report-zh.png").stat().st_size > 10_000
