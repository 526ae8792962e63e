"""File reading shared by the loaders: safe paths, bounded gzip, text encodings, JSON lines, CSV and
Parquet. Every undecodable or malformed row is counted in the load report rather than raised raw, and
input that cannot be read correctly is a :class:`CatalogError` that names the file, the line and the fix.

Limits, each with a clear error:

- only regular files are read (a FIFO or device would hang or never end);
- a file named by a mapping, or reached through a symlink, must lie inside the export folder unless
  the caller allows it (``allow_outside``);
- a file larger than :data:`MAX_FILE_BYTES` after decompression is refused (``KGREC_MAX_FILE_BYTES``
  raises the limit), so a small gzip bomb cannot exhaust memory.
"""
from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from kgrec.data.catalog import CatalogError, LoadReport

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".jsonl", ".json", ".parquet")
MAX_FILE_BYTES = int(os.environ.get("KGREC_MAX_FILE_BYTES", str(8 * 2**30)))
MAX_FIELD_LINES = 50  # a quoted CSV field spanning more lines than this is an unterminated quote
MAX_JSON_DEPTH = 64
ENCODINGS = ("utf-8", "gb18030", "big5", "shift_jis", "latin-1")  # accepted by --encoding / the mapping


def check_file(path: Path, root: Path | None = None, allow_outside: bool = False) -> Path:
    """``path`` when it is a regular file (inside ``root`` unless ``allow_outside``); a clear error otherwise."""
    try:
        st = path.stat()
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise CatalogError(f"{path}: not a regular file (a pipe, device or folder); give a file")
    if root is not None and not allow_outside:
        real, base = path.resolve(), root.resolve()
        if base != real and base not in real.parents:
            raise CatalogError(f"{path}: resolves to {real}, outside the export folder {base}; copy the file into "
                               f"the folder (or allow files outside it explicitly)")
    return path


def read_bytes(path: Path, limit: int | None = None) -> bytes:
    """The file's bytes, gunzipped when it is gzip, refusing more than ``limit`` (default
    :data:`MAX_FILE_BYTES`) decompressed bytes."""
    limit = MAX_FILE_BYTES if limit is None else limit
    check_file(path)
    too_big = CatalogError(f"{path}: more than {limit:,} bytes (decompressed); split the export, or raise "
                           f"KGREC_MAX_FILE_BYTES if this is expected")
    try:
        with open(path, "rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            if path.suffix == ".gz" or head == b"\x1f\x8b":
                out = bytearray()
                with gzip.GzipFile(fileobj=fh) as gz:
                    while chunk := gz.read(1 << 20):
                        out += chunk
                        if len(out) > limit:
                            raise too_big
                return bytes(out)
            data = fh.read(limit + 1)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise CatalogError(f"{path}: the gzip archive is truncated or corrupt ({exc}); download or export the "
                           f"file again") from None
    except OSError as exc:
        raise CatalogError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise too_big
    return data


def decode(data: bytes, path: Path, report: LoadReport, encoding: str | None = None) -> str:
    """Text of a file: UTF-8 (a BOM is dropped), the given ``encoding``, or a detected Chinese encoding.

    Without ``encoding``: valid UTF-8 is UTF-8. A file where most lines with non-ASCII bytes are not
    valid UTF-8 but the whole file is valid GB18030 (the usual encoding of Chinese shop exports; GBK is a
    subset) is read as GB18030. Otherwise, and with a given ``encoding``, bytes that are invalid become
    U+FFFD, counted per line as ``invalid_<encoding>_repaired``: never silently. What was decoded how is
    recorded in ``report.encodings``.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    lines = data.split(b"\n")
    if encoding is not None:
        encoding = codecs.lookup(encoding).name
    else:
        try:
            text = data.decode("utf-8")
            report.encodings[path.name] = "utf-8"
            return text
        except UnicodeDecodeError:
            pass
        non_ascii = [raw for raw in lines if not raw.isascii()]
        invalid = sum(1 for raw in non_ascii if not _valid(raw, "utf-8"))
        if invalid > len(non_ascii) / 2 and _valid(data, "gb18030"):
            report.encodings[path.name] = (f"gb18030 (detected: {invalid} of {len(non_ascii)} non-ASCII lines are not "
                                           f"UTF-8, and the file is valid GB18030)")
            return data.decode("gb18030")
        encoding = "utf-8"
    out, bad = [], 0
    for number, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode(encoding))
        except UnicodeDecodeError:
            out.append(raw.decode(encoding, errors="replace"))
            bad += 1
            report.repair(
                f"invalid_{encoding.replace('-', '').replace('_', '')}_repaired", where=f"{path.name}:{number}"
            )
    report.encodings[path.name] = encoding + (f" ({bad} lines with invalid bytes replaced)" if bad else "")
    return "\n".join(out)


def _valid(raw: bytes, encoding: str) -> bool:
    try:
        raw.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def read_lines(path: Path, report: LoadReport, encoding: str | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line of a text file."""
    text = decode(read_bytes(path), path, report, encoding)
    if not text.strip():
        raise CatalogError(f"{path}: the file is empty; export it again or remove it from the folder")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line


def _depth(obj, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping at ``limit``."""
    stack, deepest = [(obj, 1)], 1
    while stack:
        value, d = stack.pop()
        deepest = max(deepest, d)
        if deepest >= limit:
            return deepest
        if isinstance(value, dict):
            stack.extend((v, d + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, d + 1) for v in value)
    return deepest


def read_json_lines(path: Path, report: LoadReport, encoding: str | None = None) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each JSON object line; malformed lines are counted skips.

    ``NaN``/``Infinity`` literals are read as floats (the canonical tables clear them, counted); a line
    nested deeper than :data:`MAX_JSON_DEPTH` is a malformed line, not a crash."""
    n = 0
    for number, text in read_lines(path, report, encoding):
        n += 1
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            report.skip("malformed_json_line", where=f"{path.name}:{number} ({exc.msg})")
            continue
        except RecursionError:
            report.skip("malformed_json_line", where=f"{path.name}:{number} (nested too deeply)")
            continue
        if not isinstance(obj, dict):
            report.skip("malformed_json_line", where=f"{path.name}:{number} (not an object)")
            continue
        if _depth(obj, MAX_JSON_DEPTH) >= MAX_JSON_DEPTH:
            report.skip("malformed_json_line", where=f"{path.name}:{number} (nested deeper than {MAX_JSON_DEPTH})")
            continue
        yield number, obj
    report.rows_in[path.name] += n


def _read_csv(path: Path, text: str, delimiter: str, report: LoadReport) -> pd.DataFrame:
    """Parse CSV text with pyarrow's reader, every column as text; malformed rows are counted skips."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    lines = text.split("\n", 1)
    header = (
        next(
            iter(pd.read_csv(io.StringIO(lines[0]), sep=delimiter, header=None, dtype=str).itertuples(index=False)), ()
        )
        if lines[0].strip()
        else ()
    )
    columns = [str(c).strip() for c in header]
    if len(set(columns)) != len(columns):
        raise CatalogError(f"{path}: line 1: the header repeats a column name ({columns})")
    swallowed: list[tuple[int, str]] = []

    def bad_row(row) -> str:
        swallowed.append((row.actual_columns, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(column_names=columns, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=bad_row),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in columns}, strings_can_be_null=True, null_values=[""]
            ),
        )
    except pa.ArrowInvalid as exc:
        raise CatalogError(f"{path}: not a readable CSV file ({exc}); check the quoting and the delimiter") from None
    for fields, row_text in swallowed:
        span = row_text.count("\n") + 1
        if span > MAX_FIELD_LINES:
            first = row_text.split("\n", 1)[0][:80]
            line = text.count("\n", 0, max(text.find(row_text), 0)) + 1
            raise CatalogError(
                f"{path}: line {line} opens a quoted field that is never closed, so the next "
                f"{span - 1} lines would be read as one value (row starts {first!r}); fix the quote "
                f'(a quote inside a field is written twice: "")'
            )
        report.skip(
            "malformed_csv_row", where=f"{path.name} ({fields} fields, expected {len(columns)}: {row_text[:60]!r})"
        )
    report.rows_in[path.name] += table.num_rows + len(swallowed)
    # text columns as pandas makes them from Arrow (its Arrow-backed ``str`` from pandas 3, else object):
    # the validation hashes each column's distinct values in Arrow and turns only those into Python
    return table.to_pandas()


def read_table(path: Path, report: LoadReport, encoding: str | None = None) -> pd.DataFrame:
    """Read a CSV/TSV, JSON-lines or Parquet table as text. Malformed rows are counted skips."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".parquet"):
        check_file(path)
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise CatalogError(f"{path}: more than {MAX_FILE_BYTES:,} bytes; raise KGREC_MAX_FILE_BYTES if expected")
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for broken files
            raise CatalogError(f"{path}: not a readable Parquet file ({exc})") from None
        report.rows_in[path.name] += len(df)
        return df
    if name.endswith((".jsonl", ".json")):
        rows = [obj for _, obj in read_json_lines(path, report, encoding)]
        return pd.DataFrame(rows)
    text = decode(read_bytes(path), path, report, encoding)
    if not text.strip():
        raise CatalogError(f"{path}: the file is empty; export it again or remove it from the folder")
    delimiter = "\t" if name.endswith((".tsv", ".txt")) else ","
    return _read_csv(path, text.replace("\r\n", "\n"), delimiter, report)


def find_file(folder: Path, stem: str) -> Path | None:
    """The file ``stem.<csv|tsv|txt|jsonl|json|parquet>[.gz]`` in ``folder``, if exactly one exists."""
    hits = [p for p in folder.iterdir() if any(p.name in (stem + s, stem + s + ".gz") for s in TABLE_SUFFIXES)]
    if len(hits) > 1:
        raise CatalogError(f"{folder}: several files for table {stem!r}: {sorted(h.name for h in hits)}; keep one")
    return check_file(hits[0], folder) if hits else None


def require_columns(df: pd.DataFrame, needed: tuple[str, ...], path: Path, mapping_hint: bool = True) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        hint = (
            " (rename it, or map your column name to it in a kgrec_mapping.json: see the README)"
            if mapping_hint
            else ""
        )
        raise CatalogError(f"{path}: missing required column(s) {missing}; found {list(df.columns)}{hint}")


def check_unique_columns(df: pd.DataFrame, original: list[str], path: Path) -> None:
    """After renaming (case, aliases, a mapping), two source columns must not have become one."""
    seen: dict[str, list[str]] = {}
    for src, dst in zip(original, df.columns):
        seen.setdefault(dst, []).append(str(src))
    clash = {dst: srcs for dst, srcs in seen.items() if len(srcs) > 1}
    if clash:
        detail = "; ".join(f"{', '.join(repr(s) for s in srcs)} all mean {dst!r}" for dst, srcs in clash.items())
        raise CatalogError(
            f"{path}: columns collide after normalising names and applying aliases/the mapping: "
            f"{detail}. Rename or drop one of them, or map them explicitly in kgrec_mapping.json"
        )
