"""Text-encoding benchmark: kgrec's TextEncoder vs sentence-transformers on the same model and texts,
cold vs warm cache, and agreement of the embeddings (cosine). Prints a table, writes JSON.

    .venv/bin/python benchmarks/text_encoding.py --source demo --limit 1000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from bench_report import markdown_table, save
from kgrec.features.build import product_texts
from kgrec.features.text import TextEncoder, default_model_path
from kgrec.loaders import load_catalog


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="demo")
    ap.add_argument("--limit", type=int, default=1000, help="number of product texts")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "text_encoding.json"))
    args = ap.parse_args()
    texts = product_texts(load_catalog(args.source))[: args.limit]
    with tempfile.TemporaryDirectory() as cache:
        enc = TextEncoder(cache_dir=cache)
        enc._load()
        t0 = time.perf_counter()
        ours = enc(texts)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc(texts)
        warm = time.perf_counter() - t0
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(default_model_path()), device="cuda" if torch.cuda.is_available() else "cpu")
    st.max_seq_length = enc.max_length
    t0 = time.perf_counter()
    theirs = st.encode(texts, batch_size=enc.batch_size, normalize_embeddings=True, convert_to_numpy=True)
    st_s = time.perf_counter() - t0
    cos = (ours * theirs).sum(1)
    result = {"texts": len(texts), "threads": torch.get_num_threads(),
              "kgrec_cold_texts_per_s": len(texts) / cold, "kgrec_warm_texts_per_s": len(texts) / warm,
              "warm_speedup": cold / warm, "sentence_transformers_texts_per_s": len(texts) / st_s,
              "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean())}
    assert result["cosine_min"] > 0.999, "embeddings disagree with sentence-transformers"
    table = markdown_table(["encoder", "texts/s"], [
        ["kgrec TextEncoder, cold cache", f"{result['kgrec_cold_texts_per_s']:,.1f}"],
        ["kgrec TextEncoder, warm cache", f"{result['kgrec_warm_texts_per_s']:,.0f}"],
        ["sentence-transformers `encode`", f"{result['sentence_transformers_texts_per_s']:,.1f}"]])
    save(
        args.out,
        result,
        "Text encoding",
        f"{len(texts):,} demo product texts, {result['threads']} torch threads, same model and batch size.\n\n"
        f"{table}\n\n"
        f"Agreement: cosine(kgrec, sentence-transformers) min {result['cosine_min']:.6f}, "
        f"mean {result['cosine_mean']:.6f}.",
    )


if __name__ == "__main__":
    main()
