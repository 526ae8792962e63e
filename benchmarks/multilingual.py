"""Chinese text: encoders, review sentiment and the Chinese demo shop end to end.

1. Category purity of the Chinese reviews (``../shared/datasets/zh-online-shopping-reviews``, a seeded
   sample): does a review's nearest neighbour by embedding (cosine) share its product category? For
   MiniLM, the multilingual USE v3 and character 1–3-gram TF-IDF + 256-d SVD, with texts/s.
2. Review sentiment on the same reviews, 20 % held out (seed 0): every method of ``kgrec features``
   (head on each encoder, tfidf), the majority class and VADER (an English lexicon), accuracy and
   macro-F1.
3. The Chinese demo shop (``--locale zh``) trained with ``--encoder auto`` (which picks the multilingual
   encoder) and with MiniLM: ``kgrec search --evaluate`` Recall@20 of category-name queries (text only,
   alpha 1) and the test NDCG@10 of the served model, the GNN and item-kNN.

    .venv/bin/python benchmarks/multilingual.py --reviews 5000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench_report import markdown_table, save
from kgrec.features.sentiment import LABEL_INDEX
from kgrec.features.text import TextEncoder

ZH = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "zh-online-shopping-reviews" / \
    "online_shopping_10_cats.csv.gz"


def load_reviews(n: int, seed: int = 0) -> pd.DataFrame:
    df = pd.read_csv(ZH, dtype={"cat": str, "review": str}, keep_default_na=False)
    df["review"] = df["review"].str.replace("\ufeff", "", regex=False).str.strip()
    df = df[df["review"].str.len() > 0].drop_duplicates("review")
    return df.sample(n=min(n, len(df)), random_state=seed).reset_index(drop=True)


def purity(x: np.ndarray, cats: np.ndarray) -> float:
    """Share of rows whose nearest other row (cosine) has the same category."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return float((cats[sim.argmax(1)] == cats).mean())


def tfidf_svd(texts: list[str], dim: int = 256, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    x = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), min_df=2, sublinear_tf=True).fit_transform(texts)
    return TruncatedSVD(dim, random_state=seed).fit_transform(x)


def encoders_and_sentiment(n: int, cache: str) -> tuple[list[dict], list[dict]]:
    from kgrec.features.report import sentiment_report

    df = load_reviews(n)
    texts, cats = df["review"].tolist(), df["cat"].to_numpy()
    labels = np.array([LABEL_INDEX["positive"] if v == 1 else LABEL_INDEX["negative"] for v in df["label"]])
    enc_rows, sent_rows = [], []
    encoders = {}
    for name in ("minilm", "use-multilingual"):
        enc = TextEncoder(name, cache_dir=cache)
        t0 = time.perf_counter()
        x = enc(texts)
        seconds = time.perf_counter() - t0
        encoders[name] = enc
        enc_rows.append({"encoder": name, "dim": x.shape[1], "purity": round(purity(x, cats), 3),
                         "texts/s": round(len(texts) / seconds, 1)})
    t0 = time.perf_counter()
    x = tfidf_svd(texts)
    enc_rows.append({"encoder": "char 1-3-gram TF-IDF + SVD-256 (fitted on these texts)", "dim": x.shape[1],
                     "purity": round(purity(x, cats), 3), "texts/s": round(len(texts) / (time.perf_counter() - t0), 1)})
    chance = float(((pd.Series(cats).value_counts() / len(cats)) ** 2).sum())
    enc_rows.append({"encoder": "chance (same category at random)", "dim": "", "purity": round(chance, 3),
                     "texts/s": ""})
    for name, enc in encoders.items():
        rep = sentiment_report(texts, labels, enc, seed=0, method="auto")
        for method, row in rep["methods"].items():
            if method == "tfidf" and name != "minilm":
                continue  # tfidf does not use the encoder: one row
            label = f"head on {name}" if method == "head" else "tfidf (char 1-3-gram + logistic regression)"
            sent_rows.append({"method": label, "accuracy": round(row["accuracy"], 3),
                              "macro-F1": round(row["macro_f1"], 3),
                              "validation macro-F1": round(row["val_macro_f1"], 3)})
        if name == "minilm":
            sent_rows += [{"method": "VADER (English lexicon)", "accuracy": round(rep["lexicon"]["accuracy"], 3),
                           "macro-F1": round(rep["lexicon"]["macro_f1"], 3), "validation macro-F1": ""},
                          {"method": f"majority ({rep['majority']['label']})",
                           "accuracy": round(rep["majority"]["accuracy"], 3),
                           "macro-F1": round(rep["majority"]["macro_f1"], 3), "validation macro-F1": ""}]
        sent_rows.append({"method": f"auto with {name} chooses", "accuracy": rep["method"], "macro-F1": "",
                          "validation macro-F1": ""})
    return enc_rows, sent_rows


def zh_demo(scale: float, seed: int, work: Path) -> list[dict]:
    from kgrec.config import TrainConfig
    from kgrec.serve.recommend import Recommender
    from kgrec.serve.search import Searcher, evaluate_search
    from kgrec.train.pipeline import run_training

    rows = []
    for encoder in ("auto", "minilm"):
        out = work / encoder
        metrics = run_training(TrainConfig(data="demo", locale="zh", scale=scale, seed=seed, quiet=True, out=str(out),
                                           encoder=encoder, baselines=("itemknn", "ease")))
        rec = Recommender.load(out)
        ev = evaluate_search(Searcher(rec, rec.run.catalog()), alphas=(1.0,))
        m = metrics["models"]
        served = metrics["served"]["model"]
        rows.append({"encoder": f"{encoder} → {rec.config.encoder}", "search recall@20 (text only)":
                     round(ev["recall@20_alpha_1.0"], 4), "queries": ev["queries"],
                     f"{served} ndcg@10": round(m[served]["test"]["ndcg@10"], 4),
                     "rgcn ndcg@10": round(m["rgcn"]["test"]["ndcg@10"], 4),
                     "itemknn ndcg@10": round(m["itemknn"]["test"]["ndcg@10"], 4),
                     "ease ndcg@10": round(m["ease"]["test"]["ndcg@10"], 4),
                     "sentiment": f"{metrics['sentiment'].get('method')} "
                                  f"(val F1 {metrics['sentiment'].get('val_macro_f1', float('nan')):.3f})"})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reviews", type=int, default=5000, help="Chinese reviews sampled for parts 1 and 2")
    ap.add_argument("--scale", type=float, default=1.0, help="Chinese demo shop size for part 3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "multilingual.json"))
    args = ap.parse_args()
    if not ZH.exists():
        raise SystemExit(f"{ZH} is absent: parts 1 and 2 need the Chinese review corpus")
    with tempfile.TemporaryDirectory() as cache:
        enc_rows, sent_rows = encoders_and_sentiment(args.reviews, cache)
        demo_rows = zh_demo(args.scale, args.seed, Path(cache))
    parts = []
    for title, rows in (("Nearest-neighbour category purity of Chinese reviews", enc_rows),
                        ("Review sentiment, 20 % held out (seed 0)", sent_rows),
                        (f"Chinese demo shop (scale {args.scale}, seed {args.seed}), test split", demo_rows)):
        headers = list(rows[0])
        parts.append(f"**{title}**\n\n" + markdown_table(headers, [[r.get(h, "") for h in headers] for r in rows]))
    save(args.out, {"encoders": enc_rows, "sentiment": sent_rows, "zh_demo": demo_rows},
         "Chinese text: encoders, sentiment, the Chinese demo shop",
         f"{args.reviews} reviews sampled from online_shopping_10_cats.\n\n" + "\n\n".join(parts))


if __name__ == "__main__":
    main()
