"""The ``kgrec`` command. Each subcommand parses its flags here and calls one library function."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .catalog import CatalogError


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, default=str))


def _table(rows: list[tuple], header: tuple) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


# ---------------------------------------------------------------------------- inspect
def cmd_inspect(args: argparse.Namespace) -> int:
    from .loaders import load_catalog

    catalog = load_catalog(args.source, format=args.format, mapping=args.mapping, scale=args.scale, seed=args.seed)
    out = {"source": catalog.source, "synthetic": catalog.synthetic, **catalog.counts(), "report": catalog.report.to_dict()}
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
    return 0


# ---------------------------------------------------------------------------- import
def cmd_import(args: argparse.Namespace) -> int:
    from .loaders import load_catalog

    catalog = load_catalog(args.source, format=args.format, mapping=args.mapping, scale=args.scale, seed=args.seed)
    if args.admin_csv:
        from .neo4j.admin_csv import write_admin_import

        command = write_admin_import(catalog, args.admin_csv, database=args.database or "neo4j")
        print(f"wrote neo4j-admin import files to {args.admin_csv}; with the database stopped, run:\n{command}")
        return 0
    from .neo4j.connection import driver, resolve_config
    from .neo4j.importer import import_catalog

    config = resolve_config(args.uri, args.user, None, args.database)
    drv = driver(config)
    try:
        summary = import_catalog(catalog, drv, config.database, batch_size=args.batch_size,
                                 progress=not args.json and sys.stderr.isatty())
    finally:
        drv.close()
    out = {"source": catalog.source, "uri": config.uri, "database": config.database, **summary.to_dict()}
    if args.json:
        _print_json(out)
        return 0
    rows = [(label, v["rows"], v["created"], v["properties_set"]) for label, v in summary.nodes.items()]
    print(_table(rows, ("label", "rows", "created", "properties set")), "\n")
    rows = [(t, v["rows"], v["created"], v["properties_set"]) for t, v in summary.relationships.items()]
    print(_table(rows, ("relationship", "rows", "created", "properties set")), "\n")
    skipped = out["rows_skipped"]
    print("rows skipped at load: " + (", ".join(f"{k}={v}" for k, v in skipped.items()) or "none"))
    print(f"{out['rows']} rows in {out['seconds']} s ({out['rows_per_second']} rows/s) into {config.uri}")
    return 0


# ---------------------------------------------------------------------------- features
def cmd_features(args: argparse.Namespace) -> int:
    import numpy as np

    from .features import product_texts
    from .loaders import load_catalog
    from .sentiment import sentiment_report
    from .text import TextEncoder

    catalog = load_catalog(args.source, format=args.format, mapping=args.mapping, scale=args.scale, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    encoder = TextEncoder(args.encoder, progress=not args.json)
    texts = product_texts(catalog)
    product_emb = encoder(texts)
    np.save(out / "product_text_embeddings.npy", product_emb)
    (out / "product_ids.json").write_text(json.dumps(catalog.products["product_id"].tolist()), encoding="utf-8")
    reviews = catalog.interactions[catalog.interactions["text"].notna()]
    result = {"products": len(texts), "encoder": encoder.identity, "embedding_dim": int(product_emb.shape[1]),
              "reviews": len(reviews)}
    if len(reviews) >= 20 and reviews["rating"].notna().sum() >= 20:
        review_texts = reviews["text"].astype(str).tolist()
        report = sentiment_report(review_texts, reviews["rating"].to_numpy(dtype="float64"), encoder(review_texts),
                                  seed=args.seed, method=args.sentiment, base=args.encoder, epochs=args.sentiment_epochs,
                                  save_dir=out / "sentiment_model", data=str(args.source), progress=not args.json)
        (out / "sentiment_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        result["sentiment_report"] = report
    else:
        result["sentiment_report"] = None
        result["sentiment_skipped"] = "fewer than 20 rated reviews with text"
    if args.json:
        _print_json(result)
        return 0
    print(f"encoded {len(texts)} product texts with {encoder.identity} → {out}/product_text_embeddings.npy")
    rep = result["sentiment_report"]
    if rep is None:
        print(f"sentiment: skipped ({result['sentiment_skipped']})")
        return 0
    names = ("trained", "frozen_head", "lexicon", "majority")
    rows = [(name, f"{rep[name]['accuracy']:.3f}", f"{rep[name]['macro_f1']:.3f}") for name in names if name in rep]
    print(_table(rows, ("sentiment (held-out 20 %)", "accuracy", "macro-F1")))
    print(f"Spearman(score, rating) = {rep['spearman_score_rating']:.3f}; n_train={rep['n_train']}, n_test={rep['n_test']}")
    print(f"wrote {out / 'sentiment_report.json'} and the model with its card in {rep['model_dir']}")
    return 0


# ---------------------------------------------------------------------------- neo4j
def cmd_neo4j(args: argparse.Namespace) -> int:
    from .neo4j import server

    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.action == "build":
        path = server.build_launcher()
        print(f"built the Neo4j launcher in {path}")
    elif args.action == "start":
        state = server.start(data_dir, port=args.port)
        print(f"Neo4j started (pid {state.pid})\n  uri:      {state.uri}\n  user:     {state.user}\n"
              f"  password: {state.password}\n  data:     {state.data_dir}\n"
              f"kgrec commands use this server when NEO4J_URI is unset.")
    elif args.action == "status":
        state = server.status(data_dir)
        if state is None:
            print("Neo4j: not running")
            return 3
        print(f"Neo4j: running (pid {state.pid})\n  uri:      {state.uri}\n  user:     {state.user}\n"
              f"  password: {state.password}\n  data:     {state.data_dir}")
    elif args.action == "stop":
        state = server.stop(data_dir)
        print("Neo4j: not running" if state is None else f"Neo4j stopped (pid {state.pid})")
    return 0


# ---------------------------------------------------------------------------- parser
def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="an export folder/file, or 'demo' for the built-in synthetic shop")
    p.add_argument("--format", choices=["amazon", "generic", "demo"], help="export format (default: detected)")
    p.add_argument("--mapping", help="kgrec_mapping.json for generic exports with other column names")
    p.add_argument("--scale", type=float, default=1.0, help="demo catalog size (1 ≈ 15k interactions)")
    p.add_argument("--seed", type=int, default=0, help="demo catalog seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgrec", description="Knowledge-graph product recommendations "
                                     "(Neo4j + PyTorch Geometric + transformer text features).")
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
    p.add_argument("--json", action="store_true", help="print the import summary as JSON")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("features", help="encode product texts and evaluate the review-sentiment model")
    _add_source(p)
    p.add_argument("--out", required=True, help="folder for embeddings and sentiment_report.json")
    p.add_argument("--encoder", default="default", help="'default' (offline MiniLM), a HF model id or a local path")
    p.add_argument("--sentiment", choices=["head", "lora", "full"], default="head",
                   help="linear head on the frozen encoder (default), LoRA adapters (peft) or full fine-tuning")
    p.add_argument("--sentiment-epochs", type=int, default=2, help="fine-tuning epochs for lora/full (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("neo4j", help="build/start/stop/status of a local Neo4j server (needs Java 17+ and Maven)")
    p.add_argument("action", choices=["start", "stop", "status", "build"])
    p.add_argument("--port", type=int, help="Bolt port on 127.0.0.1 (start; default 7687)")
    p.add_argument("--data-dir", help="server folder (default ~/.kgrec/neo4j, or $KGREC_HOME/neo4j)")
    p.set_defaults(func=cmd_neo4j)

    from . import train_cli

    train_cli.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .neo4j.server import Neo4jServerError

    try:
        return int(args.func(args) or 0)
    except (CatalogError, Neo4jServerError, ValueError, FileNotFoundError, KeyError) as exc:
        if isinstance(exc, KeyError):
            exc = exc.args[0] if exc.args else exc
        print(f"kgrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
