"""Faithfulness of explanations: for sampled (user, recommended product) pairs, removing the edges of
the top-ranked explanation path must lower the model's score more than removing those of a random
path of the same length. Prints the rate and writes JSON.

    .venv/bin/python benchmarks/explain_faithfulness.py RUN_DIR --pairs 200
"""
from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from bench_report import markdown_table, save
from kgrec.serve.explain import Explainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "explain_faithfulness.json"))
    args = ap.parse_args()
    ex = Explainer.load(args.run_dir)
    rng = random.Random(args.seed)
    users = list(ex.rec.user_ids)
    rng.shuffle(users)
    wins = total = 0
    t0 = time.perf_counter()
    for user in users:
        if total >= args.pairs:
            break
        product = ex.rec.recommend(user, k=1)[0]["product_id"]
        u, p = int(ex.rec.user_index([user])[0]), int(ex.rec.product_index([product])[0])
        result = ex.explain(user, product, top=1, candidates=20)
        if not result["paths"]:
            continue
        top = result["paths"][0]
        same_len = [path for path in ex.paths(u, p) if len(path) == len(top["relations"])]
        if len(same_len) < 2:
            continue
        rand = rng.choice(same_len)
        drop_random = ex.score(u, p) - ex.score(u, p, rand)
        wins += top["importance"] > drop_random
        total += 1
    rate = wins / total if total else float("nan")
    result = {"pairs": total, "top_beats_random": wins, "rate": rate, "seconds": time.perf_counter() - t0}
    table = markdown_table(["run", "pairs", "top explanation beats a random same-length path", "seconds"],
                           [[f"`{args.run_dir}` ({ex.rec.model_name})", total, f"**{wins} ({rate:.1%})**",
                             f"{result['seconds']:.0f}"]])
    save(args.out, result, "Explanation faithfulness",
         "For sampled (user, top-1 recommendation) pairs: does removing the edges of the top-ranked explanation "
         "lower the model's score more than removing those of a random path of the same length?\n\n" + table)


if __name__ == "__main__":
    main()
