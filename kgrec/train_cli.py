"""Flags of ``python train.py`` / ``kgrec train`` and the run-folder commands (evaluate, recommend)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .split import SPLITS

# The registry's names, kept here so that 'kgrec --help' does not import torch (a test checks they match).
MODEL_NAMES = ("rgcn", "hgt", "lightgcn", "ease", "itemknn", "popularity")
DEFAULT_BASELINES = ("popularity", "itemknn", "ease", "lightgcn")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="demo", help="export folder/file, or 'demo' (default: the synthetic demo shop)")
    p.add_argument("--format", choices=["amazon", "generic", "demo"], help="export format (default: detected)")
    p.add_argument("--mapping", help="kgrec_mapping.json for generic exports")
    p.add_argument("--scale", type=float, default=1.0, help="demo catalog size (1 ≈ 15k interactions)")
    p.add_argument("--neo4j", nargs="?", const="", metavar="URI",
                   help="train from Neo4j (URI, or NEO4J_URI / the local 'kgrec neo4j start' server)")
    p.add_argument("--model", choices=MODEL_NAMES, default="rgcn", help="model to train (default rgcn)")
    p.add_argument("--baselines", default=",".join(DEFAULT_BASELINES),
                   help="comma-separated baselines trained in the same run ('' for none)")
    p.add_argument("--split", choices=SPLITS, default="loo", help="evaluation split (default loo)")
    p.add_argument("--epochs", type=int, default=300, help="maximum epochs (early stopping on val NDCG@10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", default="runs/latest", help="RUN_DIR for metrics, checkpoint, TensorBoard")
    p.add_argument("--encoder", default="default", help="text encoder: 'default' (offline MiniLM), HF id or path")
    p.add_argument("--no-text", action="store_true", help="ablation: no text embeddings")
    p.add_argument("--no-sentiment", action="store_true", help="ablation: no review sentiment")
    p.add_argument("--sentiment", choices=["head", "lora", "full"], default="head",
                   help="sentiment model: linear head on the frozen encoder (default), or LoRA/full fine-tuning")
    p.add_argument("--no-paths", action="store_true",
                   help="serve the plain GNN: no validation-weighted knowledge-graph path scores")
    p.add_argument("--relations", help="ablation: comma-separated KG relations to keep, or 'none' (default all)")
    p.add_argument("--id-embeddings", choices=["all", "no-user", "none"], default="all",
                   help="learnable id embeddings for all node types, all but users, or none (inductive)")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--loss", choices=["softmax", "bpr"], default="softmax", help="sampled softmax (default) or BPR")
    p.add_argument("--neighbours", metavar="F1,F2",
                   help="GNN mini-batches on neighbour-sampled subgraphs, fan-out per layer (e.g. 10,10); "
                        "needs pyg-lib or torch-sparse (default: full-graph message passing)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def config_from_args(args: argparse.Namespace):
    from .pipeline import TrainConfig
    from .training import OptimConfig

    relations = None
    if args.relations:
        from .schema import load_schema

        names = {e.name for e in load_schema().edges.values() if not e.target}
        relations = () if args.relations == "none" else tuple(r.strip() for r in args.relations.split(",") if r.strip())
        unknown = sorted(set(relations) - names)
        if unknown:
            raise ValueError(f"unknown relations {unknown}; choose from {', '.join(sorted(names))}, or 'none'")
    neighbours = None
    if args.neighbours:
        from .sampling import parse_fanout

        neighbours = parse_fanout(args.neighbours)
    baselines = tuple(b for b in args.baselines.split(",") if b)
    unknown = [b for b in baselines if b not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {', '.join(MODEL_NAMES)}")
    return TrainConfig(
        data=args.data, format=args.format, mapping=args.mapping, scale=args.scale, neo4j=args.neo4j,
        model=args.model, baselines=baselines, split=args.split, seed=args.seed, device=args.device, out=args.out,
        encoder=args.encoder, text=not args.no_text, sentiment=not args.no_sentiment,
        sentiment_method=args.sentiment, paths=not args.no_paths, relations=relations,
        id_embeddings=args.id_embeddings, hidden=args.hidden, layers=args.layers,
        optim=OptimConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, loss=args.loss,
                          neighbours=neighbours), quiet=args.quiet)


def metrics_table(metrics: dict) -> str:
    cols = ("recall@10", "recall@20", "ndcg@10", "ndcg@20", "mrr", "coverage@10")
    lines = [f"{'model':<11}" + "".join(f"{c:>12}" for c in cols) + f"{'epochs':>8}{'train s':>9}"]
    for name, m in metrics["models"].items():
        t = m["test"] or m["val"]
        lines.append(f"{name:<11}" + "".join(f"{t.get(c, float('nan')):>12.4f}" for c in cols)
                     + f"{m['epochs']:>8}{m['train_seconds']:>9.1f}")
    return "\n".join(lines)


def cmd_train(args: argparse.Namespace) -> int:
    from .pipeline import run_training
    from .recommend import Recommender

    cfg = config_from_args(args)
    metrics = run_training(cfg)
    if not metrics:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    split = "test" if any(m["test"] for m in metrics["models"].values()) else "val"
    label = " (SYNTHETIC demo catalog)" if metrics["synthetic"] else ""
    print(f"\n{split} metrics, full ranking, split={metrics['split']}{label}:\n{metrics_table(metrics)}")
    rec = Recommender.load(cfg.out)
    users = rec.user_ids[: cfg.show_users]
    for user in users:
        print(f"\ntop 5 for user {user}:")
        for r in rec.recommend(user, k=5):
            print(f"  {r['rank']}. {r['product_id']}  {r['title'][:70]}  ({r['score']:.3f})")
    print(f"\nrun folder: {cfg.out} (metrics.json, checkpoint.pt, config.json, tensorboard/)")
    return 0


def _read_new_products(path: str) -> list[dict]:
    """JSON lines (one product object per line) or one JSON array."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path} is empty")
    try:
        rows = json.loads(text) if text.startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON lines or a JSON array ({exc})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: every product must be a JSON object")
    return rows


def cmd_recommend(args: argparse.Namespace) -> int:
    import numpy as np

    from .recommend import Recommender

    if (args.user is None) == (args.products is None):
        raise ValueError("give exactly one of --user (a known user) or --products (a new user's product ids)")
    if args.k < 1 or args.k > 1000:
        raise ValueError("-k must be between 1 and 1000")
    rec = Recommender.load(args.run_dir)
    who = args.user
    if args.new_products:
        from .coldstart import ColdStart, NewProduct

        if args.user is None:
            raise ValueError("--new-products ranks new products for a known --user")
        products = [NewProduct.from_dict(r) for r in _read_new_products(args.new_products)]
        scores = ColdStart.load(args.run_dir, rec).score_new_products([args.user], products)[0]
        order = np.argsort(-scores)[: args.k]
        rows = [{"rank": r + 1, "product_id": products[i].product_id, "title": products[i].title or "",
                 "score": float(scores[i]), "reason": "new product: scored from its text and catalog links"}
                for r, i in enumerate(order)]
    elif args.products is not None:
        from .coldstart import ColdStart

        picks = [p for p in args.products.split(",") if p]
        rows = ColdStart.load(args.run_dir, rec).recommend_new_user(picks, k=args.k)
        for r in rows:
            r["reason"] = "for a new shopper, from the products they picked"
        who = None
    else:
        rows = rec.recommend(args.user, k=args.k, exclude_seen=not args.include_seen)
    if args.json:
        print(json.dumps({"user_id": who, "model": rec.served_name, "recommendations": rows}, indent=2,
                         ensure_ascii=False))
        return 0
    print(f"top {len(rows)} for " + (f"user {who}" if who else f"a new user who picked {args.products}")
          + f" ({rec.served_name}):")
    for r in rows:
        print(f"{r['rank']:>3}. {r['product_id']:<14} {r['score']:>8.3f}  {r['title'][:60]}")
        print(f"     {r['reason']}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    metrics = json.loads((Path(args.run_dir) / "metrics.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    print(f"dataset: {metrics['dataset']}  split: {metrics['split']}  seed: {metrics['seed']}")
    print(metrics_table(metrics))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from .explain import Explainer, run_cypher, to_json

    ex = Explainer.load(args.run_dir)
    result = ex.explain(args.user, args.product, top=args.top)
    if args.neo4j is not None:
        from .neo4j.connection import driver, resolve_config

        config = resolve_config(args.neo4j or None)
        drv = driver(config)
        try:
            for path in result["paths"]:
                if path.get("cypher"):
                    found = run_cypher(drv, path["cypher"], path["parameters"], config.database)
                    path["neo4j_match"] = bool(found) and found[0] == [n["id"] for n in path["nodes"]]
        finally:
            drv.close()
    if args.json:
        print(to_json(result))
        return 0
    print(f"why {args.product} for {args.user} ({result['model']}, score {result['score']:.3f}):")
    words = {"gnn": "graph neural network", "co_interacted": "chosen by the same shoppers", "text": "similar text",
             "category": "shared category", "brand": "shared brand"}
    for term in result["terms"]:
        line = f"  {term['value']:+8.3f}  {words.get(term['name'], term['name'])}"
        if "because" in term:
            line += f" (most from “{term['because']['title'][:50] or term['because']['product_id']}”)"
        print(line)
    print(f"GNN paths: {result['paths_found']} found, {result['paths_tested']} tested; the GNN's own score is "
          f"{result['gnn_score']:.3f}:")
    for k, path in enumerate(result["paths"], 1):
        print(f"\n{k}. {path['sentence']}\n   importance (GNN score drop without this path): {path['importance']:+.4f}"
              f" ({path['importance_served']:+.3f} of the served score)")
        if path.get("cypher"):
            print("   cypher: " + " ".join(path["cypher"].split("\n")[2:]).strip())
            print(f"   parameters: {json.dumps(path['parameters'], ensure_ascii=False)}")
        else:
            print(f"   ({path['cypher_note']})")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .recommend import Recommender
    from .search import Searcher, evaluate_search, load_run_catalog

    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError("--alpha must be between 0 and 1")
    rec = Recommender.load(args.run_dir)
    searcher = Searcher(rec, load_run_catalog(rec))
    if args.evaluate:
        result = evaluate_search(searcher)
        print(json.dumps(result, indent=2) if args.json else
              "\n".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in result.items()))
        return 0
    if not args.query:
        raise ValueError("give a query text (or --evaluate)")
    rows = searcher.search(args.query, args.user, k=args.k, alpha=args.alpha)
    if args.json:
        print(json.dumps({"query": args.query, "user_id": args.user, "alpha": args.alpha, "results": rows}, indent=2,
                         ensure_ascii=False))
        return 0
    who = f"user {args.user}" if args.user else "no user (text only)"
    print(f"search “{args.query}” for {who}, alpha={args.alpha}:")
    for r in rows:
        print(f"{r['rank']:>3}. {r['product_id']:<14} {r['score']:>8.3f}  {r['title'][:80]}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from .recommend import Recommender
    from .search import load_run_catalog, user_profile

    rec = Recommender.load(args.run_dir)
    prof = user_profile(load_run_catalog(rec), args.user, top=args.top)
    if args.json:
        print(json.dumps(prof, indent=2, ensure_ascii=False))
        return 0
    print(f"user {prof['user_id']}: {prof['interactions']} interactions {prof['by_kind']}")
    for kind, rows in prof["interests"].items():
        print(f"  top {kind}: " + (", ".join(f"{r['name']} ({r['weight']:.0%})" for r in rows) or "none"))
    rt = prof["rating_tendency"]
    print(f"  ratings: {rt['count']}, mean {rt['mean']:.2f}" if rt["count"] else "  ratings: none")
    act = prof["activity"]
    print(f"  active {act['first']} … {act['last']}, busiest on {act['busiest_weekday']}" if act["first"] else
          "  activity: no timestamps")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    if args.users < 0:
        raise ValueError("--users must be 0 or more")
    path = build_report(args.run_dir, args.out, users=args.users)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained; open it in a browser)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if not 0 < args.port < 65536:
        raise ValueError("--port must be between 1 and 65535")
    serve(args.run_dir, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from .refresh import refresh_run

    if args.epochs < 1:
        raise ValueError("--epochs must be at least 1")
    metrics = refresh_run(args.run_dir, args.data, args.out, epochs=args.epochs, format=args.format,
                          mapping=args.mapping, quiet=args.quiet or args.json)
    if args.json:
        print(json.dumps(metrics, indent=2, default=float))
        return 0
    r = metrics["refresh"]
    print(f"refreshed {r['from']} with {args.data}: {r['new_users']} new users, {r['new_products']} new products, "
          f"{r['interactions']} interactions")
    print(metrics_table(metrics))
    print(f"run folder: {args.out or args.run_dir}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model and the baselines; same flags as 'python train.py'")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="print the test metrics of a run folder (model and baselines)")
    p.add_argument("run_dir")
    p.add_argument("--json", action="store_true", help="print metrics.json")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top-K products for a user from a run folder")
    p.add_argument("run_dir")
    p.add_argument("--user", help="the user's catalog id")
    p.add_argument("--products", help="a new user: comma-separated product ids they picked (GNN runs)")
    p.add_argument("--new-products", metavar="FILE",
                   help="rank new products (JSON lines: product_id, title, description, category_ids, brand_id, ...)")
    p.add_argument("-k", type=int, default=10, help="how many products (default 10)")
    p.add_argument("--include-seen", action="store_true", help="do not exclude products the user already has")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("explain", help="knowledge-graph paths from a user to a product, ranked by the model, with Cypher")
    p.add_argument("run_dir")
    p.add_argument("--user", required=True, help="the user's catalog id")
    p.add_argument("--product", required=True, help="the product's catalog id")
    p.add_argument("--top", type=int, default=5, help="how many paths (default 5)")
    p.add_argument("--neo4j", nargs="?", const="", metavar="URI", help="also run each path's Cypher in Neo4j")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("search", help="semantic product search blended with the user's graph preferences")
    p.add_argument("run_dir")
    p.add_argument("query", nargs="?", help="search text")
    p.add_argument("--user", help="personalise for this user (default: text only)")
    p.add_argument("-k", type=int, default=10, help="how many products (default 10)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the text match, 0..1 (default 0.5)")
    p.add_argument("--evaluate", action="store_true", help="evaluate on queries made from held-out products")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("profile", help="a user's interests, rating tendency and activity")
    p.add_argument("run_dir")
    p.add_argument("--user", required=True, help="the user's catalog id")
    p.add_argument("--top", type=int, default=5, help="how many interests per kind (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("report", help="one self-contained HTML report of a run (charts and explanations)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--users", type=int, default=3, help="users shown with recommendations and explanations (default 3)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("serve", help="HTTP API (recommend, score, explain, search) over a run folder")
    p.add_argument("run_dir")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--quiet", action="store_true", help="log warnings only, no access log")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("refresh", help="add new interactions, users and products to a GNN run without a full retrain")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True, help="the current export (old and new rows), any loader format")
    p.add_argument("--format", choices=["amazon", "generic", "demo"], help="export format (default: detected)")
    p.add_argument("--mapping", help="kgrec_mapping.json for generic exports")
    p.add_argument("--out", help="write the refreshed run here (default: replace RUN_DIR)")
    p.add_argument("--epochs", type=int, default=20, help="fine-tuning epochs at most (default 20, early stopping)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the refreshed run's metrics as JSON")
    p.set_defaults(func=cmd_refresh)
