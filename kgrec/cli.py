"""The ``kgrec`` command. Each subcommand parses its flags, calls one library function and prints.

Errors kgrec raises on purpose (:mod:`kgrec.errors`, and ``ValueError`` for a bad flag value) are
printed as one line with exit status 2; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

from kgrec.config import (
    ANN_MIN_PRODUCTS,
    DEFAULT_ENCODER,
    FORMATS,
    LOCALES,
    METRICS,
    REFRESH_EPOCHS,
    SEARCH_ALPHA,
    SENTIMENT_EPOCHS,
    SENTIMENT_METHODS,
    add_train_arguments,
    config_from_args,
)
from kgrec.errors import KgrecError


def _print_json(obj) -> None:
    """Strict JSON: NaN and infinities become null."""
    from kgrec.serve.run import _finite

    print(json.dumps(_finite(obj), indent=2, ensure_ascii=False, default=str, allow_nan=False))


def _table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def _load(args: argparse.Namespace):
    from kgrec.loaders import load_catalog

    return load_catalog(args.source, format=args.format, mapping=args.mapping, scale=args.scale, seed=args.seed,
                        encoding=args.encoding, locale=args.locale)


def _k(value: int, flag: str = "-k", most: int = 1000) -> int:
    if not 1 <= value <= most:
        raise ValueError(f"{flag} must be between 1 and {most}, got {value}")
    return value


def metrics_table(metrics: dict) -> str:
    lines = [f"{'model':<11}" + "".join(f"{c:>12}" for c in METRICS) + f"{'epochs':>8}{'train s':>9}"]
    for name, m in metrics["models"].items():
        t = m["test"] or m["val"]
        cells = "".join(f"{_num(t.get(c)):>12}" for c in METRICS)
        lines.append(f"{name:<11}{cells}{m['epochs']:>8}{m['train_seconds']:>9.1f}")
    return "\n".join(lines)


def _num(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


# ---------------------------------------------------------------------------- catalog and Neo4j
def cmd_inspect(args: argparse.Namespace) -> int:
    catalog = _load(args)
    out = {
        "source": catalog.source,
        "synthetic": catalog.synthetic,
        **catalog.counts(),
        "report": catalog.report.to_dict(),
    }
    if args.json:
        _print_json(out)
        return 0
    if catalog.synthetic:
        print("SYNTHETIC demo catalog (generated, not real shop data)")
    print(f"source: {catalog.source}\n")
    print(_table([(k, v) for k, v in out["nodes"].items()], ("node type", "count")), "\n")
    print(_table([(k, v) for k, v in out["edges"].items()], ("edge type", "count")), "\n")
    print(_table([(k, v) for k, v in out["interactions_by_kind"].items()], ("interaction kind", "count")), "\n")
    rep = out["report"]
    rows = [(what, reason, n) for what in ("skipped", "merged", "repaired") for reason, n in rep[what].items()]
    print(_table(rows, ("action", "reason", "rows")) if rows else "load report: nothing skipped, merged or repaired")
    if any(enc != "utf-8" for enc in rep["encodings"].values()):
        print("\ntext encodings: " + "; ".join(f"{f}: {e}" for f, e in rep["encodings"].items()))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    catalog = _load(args)
    if args.admin_csv or args.bulk:
        import tempfile

        from kgrec.neo4j.admin_csv import write_admin_import

        folder = args.admin_csv or tempfile.mkdtemp(prefix="kgrec-bulk-")
        files = write_admin_import(catalog, folder, database=args.database or "neo4j")
        if not args.bulk:
            print(f"wrote neo4j-admin import files to {folder}; with the database stopped, run:\n{files.command}")
            return 0
        from kgrec.neo4j import server

        data_dir = Path(args.data_dir) if args.data_dir else None
        out = server.bulk_import(files, data_dir)
        if args.json:
            _print_json(out)
            return 0
        print(f"bulk import into {data_dir or server.default_data_dir()}: {out['nodes']:,} nodes and "
              f"{out['relationships']:,} relationships (= the rows written) in {out['seconds']} s "
              f"({out['rows_per_second']:,} rows/s); start it with 'kgrec neo4j start'")
        return 0
    from kgrec.neo4j.importer import import_to

    out = import_to(
        catalog,
        args.uri,
        args.user,
        args.database,
        batch_size=args.batch_size,
        progress=not args.json and sys.stderr.isatty(),
    )
    if args.json:
        _print_json(out)
        return 0
    rows = [(label, v["rows"], v["created"], v["properties_set"]) for label, v in out["nodes"].items()]
    print(_table(rows, ("label", "rows", "created", "properties set")), "\n")
    rows = [(t, v["rows"], v["created"], v["properties_set"]) for t, v in out["relationships"].items()]
    print(_table(rows, ("relationship", "rows", "created", "properties set")), "\n")
    skipped = out["rows_skipped"]
    print("rows skipped at load: " + (", ".join(f"{k}={v}" for k, v in skipped.items()) or "none"))
    print(f"{out['rows']} rows in {out['seconds']} s ({out['rows_per_second']} rows/s) into {out['uri']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from kgrec.features.report import feature_report

    result = feature_report(
        _load(args),
        args.out,
        args.encoder,
        args.sentiment,
        args.sentiment_epochs,
        args.seed,
        source=str(args.source),
        progress=not args.json,
    )
    if args.json:
        _print_json(result)
        return 0
    print(
        f"encoded {result['products']} product texts with {result['encoder']} → "
        f"{result['out']}/product_text_embeddings.npy"
    )
    rep = result["sentiment_report"]
    if rep is None:
        print(f"sentiment: skipped ({result['sentiment_skipped']})")
        return 0
    print(f"text encoder: {result['encoder']} ({result['encoder_choice']})")
    rows = [(f"{name}{' (chosen)' if name == rep['method'] else ''}", f"{row['accuracy']:.3f}",
             f"{row['macro_f1']:.3f}", f"{row['val_macro_f1']:.3f}") for name, row in rep["methods"].items()]
    rows += [(name, f"{rep[name]['accuracy']:.3f}", f"{rep[name]['macro_f1']:.3f}", "") for name in ("lexicon",
                                                                                                 "majority")]
    print(_table(rows, ("sentiment (held-out 20 %)", "accuracy", "macro-F1", "validation macro-F1")))
    spearman = rep["spearman_score_rating"]
    print((f"Spearman(score, rating) = {spearman:.3f}; " if spearman is not None else "")
          + f"n_train={rep['n_train']}, n_test={rep['n_test']}")
    print(f"wrote {result['out']}/sentiment_report.json and the model with its card in {rep['model_dir']}")
    return 0


def cmd_trending(args: argparse.Namespace) -> int:
    from kgrec.serve.run import load_run
    from kgrec.serve.trending import Trending

    trend = Trending(load_run(args.run_dir))
    rows = trend.top(_k(args.k, most=1000), args.category)
    if args.json:
        _print_json({"category": args.category, "half_life_days": trend.half_life, "products": rows})
        return 0
    where = f" in {args.category}" if args.category else ""
    print(f"trending{where} (half-life {trend.half_life:g} days):")
    for r in rows:
        print(f"{r['rank']:>3}. {r['product_id']:<14} {r['score']:>9.2f}  {r['title'][:80]}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from kgrec.neo4j.connection import resolve_config
    from kgrec.neo4j.writeback import publish_run

    users = None if args.users == "all" else [u.strip() for u in args.users.split(",") if u.strip()]
    if users == []:
        raise ValueError("--users wants 'all' or comma-separated user ids")
    config = resolve_config(args.uri, args.user, database=args.database)
    out = publish_run(args.run_dir, config, users=users, k=_k(args.k, most=100), replace_all=args.replace_older,
                      batch_size=args.batch_size, progress=not args.json and sys.stderr.isatty())
    if args.json:
        _print_json(out)
        return 0
    print(f"published {out['relationships']} RECOMMENDED relationships for {out['users']} users "
          f"(model {out['model']}, run_id {out['run_id']}) to {out['uri']} in {out['seconds']} s")
    if out["relationships"] != out["expected"]:
        print(f"warning: {out['expected'] - out['relationships']} recommendations were not written: their user or "
              f"product is not in this Neo4j database (import the same export first: kgrec import)")
    return 0


def cmd_neo4j(args: argparse.Namespace) -> int:
    from kgrec.neo4j import server

    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.action == "build":
        print(f"built the Neo4j launcher in {server.build_launcher()}")
        return 0
    if args.action == "start":
        state = server.start(data_dir, port=args.port)
        print(
            f"Neo4j started (pid {state.pid})\n  uri:      {state.uri}\n  user:     {state.user}\n"
            f"  password: {state.password}\n  data:     {state.data_dir}\n"
            f"kgrec commands use this server when NEO4J_URI is unset."
        )
    elif args.action == "status":
        state = server.status(data_dir)
        if state is None:
            print("Neo4j: not running")
            return 3
        print(
            f"Neo4j: running (pid {state.pid})\n  uri:      {state.uri}\n  user:     {state.user}\n"
            f"  password: {state.password}\n  data:     {state.data_dir}"
        )
    else:
        state = server.stop(data_dir)
        print("Neo4j: not running" if state is None else f"Neo4j stopped (pid {state.pid})")
    return 0


# ---------------------------------------------------------------------------- training and run folders
def cmd_train(args: argparse.Namespace) -> int:
    from kgrec.serve.recommend import Recommender
    from kgrec.train.pipeline import run_training

    cfg = config_from_args(args)
    metrics = run_training(cfg)
    if not metrics:  # a torchrun worker other than rank 0: rank 0 reports
        return 0
    split = "test" if any(m["test"] for m in metrics["models"].values()) else "val"
    label = " (SYNTHETIC demo catalog)" if metrics["synthetic"] else ""
    print(f"\n{split} metrics, full ranking, split={metrics['split']}{label}:\n{metrics_table(metrics)}")
    served = metrics["served"]
    print(
        f"\nserved: {served['model']}"
        + (f", refitted on all {served['pairs']} interactions" if served["refit"] else "")
    )
    rec = Recommender.load(cfg.out)
    for user in rec.user_ids[: cfg.show_users]:
        print(f"\ntop 5 for user {user}:")
        for r in rec.recommend(user, k=5):
            print(f"  {r['rank']}. {r['product_id']}  {r['title'][:70]}  ({r['score']:.3f})")
    print(f"\nrun folder: {cfg.out} (metrics.json, checkpoint.pt, graph.pt, catalog/, config.json, tensorboard/)")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from kgrec.train.pipeline import load_source, run_training
    from kgrec.train.tune import SPACE, tune, tuned_config

    cfg = config_from_args(args)
    catalog = load_source(cfg)
    tuning = tune(cfg, trials=args.trials, timeout=args.timeout, catalog=catalog, progress=not cfg.quiet)
    rows = [[t["number"], t["state"], "" if t["val_ndcg@10"] is None else f"{t['val_ndcg@10']:.4f}",
             *(_setting(t["params"].get(k)) for k in SPACE)] for t in tuning.trials]
    print(f"\n{len(tuning.trials)} trials in {tuning.seconds:.0f} s (validation NDCG@10; trial 0 is the defaults):")
    print(_table([tuple(r) for r in rows], ("trial", "state", "val ndcg@10", *SPACE)))
    default = "n/a" if tuning.default_val is None else f"{tuning.default_val:.4f}"
    print(f"\nbest: trial settings {tuning.best}, validation NDCG@10 {tuning.best_val:.4f} (defaults {default})")
    if args.no_train:
        return 0
    best = tuned_config(cfg, tuning)
    print(f"training the run with them into {best.out} ...")
    metrics = run_training(best, catalog, annotate=lambda m: m.update(tuning=tuning.to_dict()))
    split = "test" if any(m["test"] for m in metrics["models"].values()) else "val"
    print(f"\n{split} metrics, full ranking, split={metrics['split']}:\n{metrics_table(metrics)}")
    print(f"\nrun folder: {best.out} (config.json holds the chosen settings, metrics.json the search)")
    return 0


def _setting(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return "" if value is None else str(value)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kgrec.serve.run import load_run

    metrics = load_run(args.run_dir).metrics
    if args.json:
        _print_json(metrics)
        return 0
    print(f"dataset: {metrics['dataset']}  split: {metrics['split']}  seed: {metrics['seed']}")
    print(metrics_table(metrics))
    return 0


def _read_new_products(path: str) -> list[dict]:
    """JSON lines (one product object per line) or one JSON array."""
    text = Path(path).read_text(encoding="utf-8").strip()
    if not text:
        raise ValueError(f"{path} is empty")
    try:
        rows = (
            json.loads(text)
            if text.startswith("[")
            else [json.loads(line) for line in text.splitlines() if line.strip()]
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON lines or a JSON array ({exc})") from None
    if not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{path}: every product must be a JSON object")
    return rows


def cmd_recommend(args: argparse.Namespace) -> int:
    from kgrec.serve.recommend import Recommender

    if (args.user is None) == (args.products is None):
        raise ValueError("give exactly one of --user (a known user) or --products (a new user's product ids)")
    if args.new_products and args.user is None:
        raise ValueError("--new-products ranks new products for a known --user")
    k = _k(args.k)
    rec = Recommender.load(args.run_dir)
    if args.new_products:
        from kgrec.serve.coldstart import ColdStart

        rows = ColdStart.load(args.run_dir, rec).recommend_new_products(
            args.user, _read_new_products(args.new_products), k
        )
    elif args.products is not None:
        from kgrec.serve.coldstart import ColdStart

        rows = ColdStart.load(args.run_dir, rec).recommend_new_user([p for p in args.products.split(",") if p], k=k)
        for r in rows:
            r["reason"] = "for a new shopper, from the products they picked"
    else:
        rows = rec.recommend(args.user, k=k, exclude_seen=not args.include_seen, exact=args.exact)
    if args.json:
        _print_json({"user_id": args.user, "model": rec.served_name, "recommendations": rows})
        return 0
    who = f"user {args.user}" if args.user else f"a new user who picked {args.products}"
    print(f"top {len(rows)} for {who} ({rec.served_name}):")
    for r in rows:
        print(f"{r['rank']:>3}. {r['product_id']:<14} {r['score']:>8.3f}  {r['title'][:60]}")
        print(f"     {r['reason']}")
    return 0


TERM_WORDS = {
    "gnn": "graph neural network",
    "co_interacted": "chosen by the same shoppers",
    "text": "similar text",
    "category": "shared category",
    "brand": "shared brand",
    "ease": "often chosen together (EASE^R weights)",
}


def cmd_explain(args: argparse.Namespace) -> int:
    from kgrec.serve.explain import Explainer, check_in_neo4j

    result = Explainer.load(args.run_dir).explain(args.user, args.product, top=_k(args.top, "--top", 100))
    if args.neo4j is not None:
        check_in_neo4j(result, args.neo4j)
    if args.json:
        _print_json(result)
        return 0
    print(f"why {args.product} for {args.user} ({result['model']}, score {result['score']:.3f}):")
    for term in result["terms"]:
        line = f"  {term['value']:+8.3f}  {TERM_WORDS.get(term['name'], term['name'])}"
        if "because" in term:
            line += f" (most from “{term['because']['title'][:50] or term['because']['product_id']}”)"
        print(line)
    print(
        f"GNN paths: {result['paths_found']} found, {result['paths_tested']} tested; the GNN's own score is "
        f"{result['gnn_score']:.3f}:"
    )
    for k, path in enumerate(result["paths"], 1):
        print(
            f"\n{k}. {path['sentence']}\n   importance (GNN score drop without this path): {path['importance']:+.4f}"
            f" ({path['importance_served']:+.3f} of the served score)"
        )
        if path.get("cypher"):
            print("   cypher: " + " ".join(path["cypher"].split("\n")[2:]).strip())
            print(f"   parameters: {json.dumps(path['parameters'], ensure_ascii=False)}")
        else:
            print(f"   ({path['cypher_note']})")
        if "neo4j_match" in path:
            print(f"   Neo4j returns this path: {'yes' if path['neo4j_match'] else 'NO'}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from kgrec.serve.recommend import Recommender
    from kgrec.serve.search import Searcher, evaluate_search, load_run_catalog

    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError("--alpha must be between 0 and 1")
    k = _k(args.k)
    rec = Recommender.load(args.run_dir)
    searcher = Searcher(rec, load_run_catalog(rec))
    if args.evaluate:
        result = evaluate_search(searcher)
        if args.json:
            _print_json(result)
        else:
            print("\n".join(f"{key}: {v:.4f}" if isinstance(v, float) else f"{key}: {v}" for key, v in result.items()))
        return 0
    if not args.query:
        raise ValueError("give a query text (or --evaluate)")
    rows = searcher.search(args.query, args.user, k=k, alpha=args.alpha)
    if args.json:
        _print_json({"query": args.query, "user_id": args.user, "alpha": args.alpha, "results": rows})
        return 0
    who = f"user {args.user}, alpha={args.alpha}" if args.user else "no user (text match only)"
    print(f"search “{args.query}” for {who}:")
    for r in rows:
        print(f"{r['rank']:>3}. {r['product_id']:<14} {r['score']:>8.3f}  {r['title'][:80]}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    from kgrec.serve.run import load_run
    from kgrec.serve.search import user_profile

    prof = user_profile(load_run(args.run_dir).catalog(), args.user, top=_k(args.top, "--top", 100))
    if args.json:
        _print_json(prof)
        return 0
    print(f"user {prof['user_id']}: {prof['interactions']} interactions {prof['by_kind']}")
    for kind, rows in prof["interests"].items():
        print(f"  top {kind}: " + (", ".join(f"{r['name']} ({r['weight']:.0%})" for r in rows) or "none"))
    rt = prof["rating_tendency"]
    print(f"  ratings: {rt['count']}, mean {rt['mean']:.2f}" if rt["count"] else "  ratings: none")
    act = prof["activity"]
    print(
        f"  active {act['first']} … {act['last']}, busiest on {act['busiest_weekday']}"
        if act["first"]
        else "  activity: no timestamps"
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from kgrec.serve.report import build_report

    if args.users < 0:
        raise ValueError("--users must be 0 or more")
    path = build_report(args.run_dir, args.out, users=args.users)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained; open it in a browser)")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    import time

    from kgrec.serve import ann
    from kgrec.serve.run import load_run

    run = load_run(args.run_dir)
    items = run.index_vectors()
    if items is None:
        raise ValueError(f"{args.run_dir} serves {run.served_name}, which has no product vectors to index")
    t0 = time.perf_counter()
    index = ann.ProductIndex.build(items)
    path = run.path / ann.INDEX_FILE
    tmp = path.with_name(path.name + ".tmp")
    index.save(tmp)
    os.replace(tmp, path)  # readers see the old file or the new one
    print(f"indexed {items.shape[0]:,} product vectors of {items.shape[1]} dimensions in "
          f"{time.perf_counter() - t0:.1f} s → {path}")
    if not ann.wants_index(items.shape[0]):
        print(f"note: below {ANN_MIN_PRODUCTS:,} products; 'recommend' and 'serve' now use the index too "
              f"(delete the file to score exactly again)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from kgrec.serve.http import serve

    if not 0 < args.port < 65536:
        raise ValueError("--port must be between 1 and 65535")
    serve(args.run_dir, host=args.host, port=args.port, log_level="warning" if args.quiet else "info")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    from kgrec.train.refresh import refresh_run

    if args.epochs < 1:
        raise ValueError("--epochs must be at least 1")
    if args.in_place and args.out:
        raise ValueError("give --out or --in-place, not both")
    metrics = refresh_run(
        args.run_dir,
        args.data,
        args.out,
        epochs=args.epochs,
        format=args.format,
        mapping=args.mapping,
        quiet=args.quiet or args.json,
        in_place=args.in_place,
        events=args.events,
    )
    if args.json:
        _print_json(metrics)
        return 0
    r = metrics["refresh"]
    print(
        f"refreshed {r['from']} with {args.data}: {r['new_users']} new users, {r['new_products']} new products, "
        f"{r['interactions']} interactions"
    )
    print(metrics_table(metrics))
    print(f"run folder: {r['out']}")
    return 0


# ---------------------------------------------------------------------------- parser
def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="an export folder/file, or 'demo' for the built-in synthetic shop")
    p.add_argument("--format", choices=FORMATS, help="export format (default: detected)")
    p.add_argument("--mapping", help="kgrec_mapping.json for generic exports with other column names")
    p.add_argument(
        "--encoding", help="text encoding of generic CSV/JSON exports, e.g. gb18030 (default: UTF-8, GB18030 detected)"
    )
    p.add_argument("--scale", type=float, default=1.0, help="demo catalog size (1 ≈ 15k interactions)")
    p.add_argument("--locale", choices=LOCALES, default="en", help="language of the demo shop (default en)")
    p.add_argument("--seed", type=int, default=0, help="demo catalog seed")


def _run_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder written by 'kgrec train'")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kgrec",
        description="Knowledge-graph product recommendations (Neo4j + PyTorch Geometric + transformer text features).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("inspect", help="load an export and print node/edge counts and the load report")
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("import", help="import an export into Neo4j (idempotent MERGE), or write neo4j-admin CSVs")
    _add_source(p)
    p.add_argument("--uri", help="bolt URI (default: NEO4J_URI, else the 'kgrec neo4j start' server)")
    p.add_argument("--user", help="user (default: NEO4J_USER or neo4j); the password comes from NEO4J_PASSWORD")
    p.add_argument("--database", help="database name (default neo4j)")
    p.add_argument("--batch-size", type=int, default=5000, help="rows per transaction (default 5000)")
    p.add_argument("--admin-csv", metavar="DIR", help="write neo4j-admin import CSVs to DIR instead of importing")
    p.add_argument("--bulk", action="store_true",
                   help="load a fresh database of the local server (stopped) with Neo4j's import tool; "
                        "replaces what it held")
    p.add_argument("--data-dir", help="with --bulk: the local server's data folder (default ~/.kgrec/neo4j)")
    p.add_argument("--json", action="store_true", help="print the import summary as JSON")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("trending", help="the products trending now (time-decayed popularity), by category")
    _run_dir(p)
    p.add_argument("--category", help="a category id or name (its subcategories included)")
    p.add_argument("-k", type=int, default=10, help="how many (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_trending)

    p = sub.add_parser("publish", help="write a run's recommendations and their reasons to Neo4j")
    _run_dir(p)
    p.add_argument("--users", default="all", help="'all' (default) or comma-separated user ids")
    p.add_argument("-k", type=int, default=10, help="recommendations per user (default 10)")
    p.add_argument("--uri", help="bolt URI (default: NEO4J_URI, else the 'kgrec neo4j start' server)")
    p.add_argument("--user", help="user (default: NEO4J_USER or neo4j); the password comes from NEO4J_PASSWORD")
    p.add_argument("--database", help="database name (default neo4j)")
    p.add_argument("--replace-older", action="store_true",
                   help="also remove the recommendations of every other run (default: keep them)")
    p.add_argument("--batch-size", type=int, default=500, help="users per transaction (default 500)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("features", help="encode product texts and evaluate the review-sentiment model")
    _add_source(p)
    p.add_argument("--out", required=True, help="folder for embeddings and sentiment_report.json")
    p.add_argument(
        "--encoder", default=DEFAULT_ENCODER,
        help="'auto' (multilingual USE v3 when most product text is not Latin script, else MiniLM), 'minilm', "
             "'use-multilingual', a Hugging Face id or a local folder"
    )
    p.add_argument(
        "--sentiment",
        choices=SENTIMENT_METHODS,
        default="auto",
        help="auto (default: the better of head and tfidf on validation), a linear head on the frozen encoder, "
        "character n-gram TF-IDF + logistic regression, LoRA adapters (peft) or full fine-tuning",
    )
    p.add_argument(
        "--sentiment-epochs",
        type=int,
        default=SENTIMENT_EPOCHS,
        help=f"fine-tuning epochs for lora/full (default {SENTIMENT_EPOCHS})",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("neo4j", help="build/start/stop/status of a local Neo4j server (needs Java 17+ and Maven)")
    p.add_argument("action", choices=["start", "stop", "status", "build"])
    p.add_argument("--port", type=int, help="Bolt port on 127.0.0.1 (start; default 7687)")
    p.add_argument("--data-dir", help="server folder (default ~/.kgrec/neo4j, or $KGREC_HOME/neo4j)")
    p.set_defaults(func=cmd_neo4j)

    p = sub.add_parser("train", help="train a model and the baselines; same flags as 'python train.py'")
    add_train_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("tune", help="search the GNN's settings on validation (Optuna), then train the run with "
                                    "the best; same flags as 'train'")
    add_train_arguments(p)
    p.add_argument("--trials", type=int, default=30, help="trials to run at most (default 30)")
    p.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    p.add_argument("--no-train", action="store_true", help="only search and print the settings; train no run")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("evaluate", help="print the test metrics of a run folder (model and baselines)")
    _run_dir(p)
    p.add_argument("--json", action="store_true", help="print metrics.json")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("recommend", help="top-K products for a user from a run folder")
    _run_dir(p)
    p.add_argument("--user", help="the user's catalog id")
    p.add_argument("--products", help="a new user: comma-separated product ids they picked (GNN runs)")
    p.add_argument(
        "--new-products",
        metavar="FILE",
        help="rank new products (JSON lines: product_id, title, description, category_ids, brand_id, ...)",
    )
    p.add_argument("-k", type=int, default=10, help="how many products (default 10)")
    p.add_argument("--include-seen", action="store_true", help="do not exclude products the user already has")
    p.add_argument("--exact", action="store_true", help="score every product even when the run has a top-K index")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("explain", help="the served score's terms and the GNN's knowledge-graph paths, with Cypher")
    _run_dir(p)
    p.add_argument("--user", required=True, help="the user's catalog id")
    p.add_argument("--product", required=True, help="the product's catalog id")
    p.add_argument("--top", type=int, default=5, help="how many paths (default 5)")
    p.add_argument("--neo4j", nargs="?", const="", metavar="URI", help="also run each path's Cypher in Neo4j")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("search", help="semantic product search blended with the user's graph preferences")
    _run_dir(p)
    p.add_argument("query", nargs="?", help="search text")
    p.add_argument("--user", help="personalise for this user (default: text only)")
    p.add_argument("-k", type=int, default=10, help="how many products (default 10)")
    p.add_argument(
        "--alpha", type=float, default=SEARCH_ALPHA, help=f"weight of the text match, 0..1 (default {SEARCH_ALPHA})"
    )
    p.add_argument("--evaluate", action="store_true", help="evaluate on queries made from held-out products")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("profile", help="a user's top categories, brands and tags, ratings and activity")
    _run_dir(p)
    p.add_argument("--user", required=True, help="the user's catalog id")
    p.add_argument("--top", type=int, default=5, help="how many of each (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("report", help="one self-contained HTML report of a run (charts and explanations)")
    _run_dir(p)
    p.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    p.add_argument("--users", type=int, default=3, help="users shown with recommendations and explanations (default 3)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("index", help=f"build a run's approximate top-K index (automatic from "
                                     f"{ANN_MIN_PRODUCTS:,} products)")
    _run_dir(p)
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("serve", help="HTTP API (recommend, score, explain, search) over a run folder")
    _run_dir(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--quiet", action="store_true", help="log warnings only, no access log")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("refresh", help="add new interactions, users and products to a GNN run without a full retrain")
    _run_dir(p)
    p.add_argument("--data", required=True, help="the current export (old and new rows), any loader format")
    p.add_argument("--format", choices=FORMATS, help="export format (default: detected)")
    p.add_argument("--mapping", help="kgrec_mapping.json for generic exports")
    p.add_argument("--out", help="write the refreshed run here (default: a new folder RUN_DIR-refresh-TIME beside it)")
    p.add_argument("--in-place", action="store_true", help="replace RUN_DIR itself (atomically) instead")
    p.add_argument("--events", action="store_true",
                   help="also train on the events 'kgrec serve' logged for RUN_DIR (RUN_DIR.state/events.jsonl)")
    p.add_argument(
        "--epochs",
        type=int,
        default=REFRESH_EPOCHS,
        help=f"fine-tuning epochs at most (default {REFRESH_EPOCHS}, early stopping)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the refreshed run's metrics as JSON")
    p.set_defaults(func=cmd_refresh)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from kgrec.neo4j.server import Neo4jServerError

    try:
        return int(args.func(args) or 0)
    except (KgrecError, Neo4jServerError, ValueError, FileNotFoundError) as exc:
        print(f"kgrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a permission: say what, without a traceback
        print(f"kgrec {args.command}: error: {exc.strerror or exc} ({exc.filename or 'I/O'})", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
