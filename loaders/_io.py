"""File reading shared by the loaders: gzip, encodings, JSON lines, CSV and Parquet, with
every undecodable or malformed line counted in the load report rather than raised raw."""
from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from pathlib import Path
from typing import Iterator

import pandas as pd

from ..catalog import CatalogError, LoadReport

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet")


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise CatalogError(
                f"{path}: the gzip archive is truncated or corrupt ({exc}); download or export the file again"
            ) from None
    return raw


def read_lines(path: Path, report: LoadReport) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line, decoding UTF-8 (a BOM is dropped).

    Lines that are not valid UTF-8 are decoded with replacement characters and counted as
    ``invalid_utf8_repaired`` so nothing is lost silently.
    """
    data = _read_bytes(path)
    if not data.strip():
        raise CatalogError(f"{path}: the file is empty; export it again or remove it from the folder")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            report.repair("invalid_utf8_repaired", where=f"{path.name}:{number}")
        yield number, text


def read_json_lines(path: Path, report: LoadReport) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each JSON object line; malformed lines are counted skips."""
    n = 0
    for number, text in read_lines(path, report):
        n += 1
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            report.skip("malformed_json_line", where=f"{path.name}:{number} ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            report.skip("malformed_json_line", where=f"{path.name}:{number} (not an object)")
            continue
        yield number, obj
    report.rows_in[path.name] += n


def read_table(path: Path, report: LoadReport) -> pd.DataFrame:
    """Read a CSV/TSV, JSON-lines or Parquet table as strings. Malformed rows are counted skips."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".parquet"):
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise CatalogError(f"{path}: not a readable Parquet file ({exc})") from None
        report.rows_in[path.name] += len(df)
        return df
    if name.endswith((".jsonl", ".json")):
        rows = [obj for _, obj in read_json_lines(path, report)]
        return pd.DataFrame(rows)
    delimiter = "\t" if name.endswith((".tsv", ".txt")) else ","
    lines = list(read_lines(path, report))
    header_no, header = lines[0]
    columns = next(csv.reader([header], delimiter=delimiter))
    columns = [c.strip() for c in columns]
    if len(set(columns)) != len(columns):
        raise CatalogError(f"{path}: line {header_no}: the header repeats a column name ({columns})")
    text = "\n".join(t for _, t in lines)
    records: list[list[str]] = []
    n_total = 0
    # csv handles quoted newlines; map each parsed record back to its first physical line
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    next(reader)
    for record in reader:
        n_total += 1
        if len(record) != len(columns):
            report.skip("malformed_csv_row",
                        where=f"{path.name}:record {reader.line_num} ({len(record)} fields, expected {len(columns)})")
            continue
        records.append(record)
    report.rows_in[path.name] += n_total
    df = pd.DataFrame(records, columns=columns, dtype=object)
    return df.replace({"": None})


def find_file(folder: Path, stem: str) -> Path | None:
    """The file ``stem.<csv|tsv|txt|jsonl|json|parquet>[.gz]`` in ``folder``, if exactly one exists."""
    hits = [p for p in folder.iterdir() if p.is_file() and any(p.name in (stem + s, stem + s + ".gz") for s in TABLE_SUFFIXES)]
    if len(hits) > 1:
        raise CatalogError(f"{folder}: several files for table {stem!r}: {sorted(h.name for h in hits)}; keep one")
    return hits[0] if hits else None


def require_columns(df: pd.DataFrame, needed: tuple[str, ...], path: Path, mapping_hint: bool = True) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        hint = " (rename it, or map your column name to it in a kgrec_mapping.json: see the README)" if mapping_hint else ""
        raise CatalogError(f"{path}: missing required column(s) {missing}; found {list(df.columns)}{hint}")
