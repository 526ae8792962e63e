"""Catalog export readers, one module per format. Installed as ``kgrec.loaders``.

Every loader returns a validated :class:`kgrec.data.catalog.Catalog` and never imports torch.
"""
from __future__ import annotations

from pathlib import Path

from kgrec.config import FORMATS
from kgrec.data.catalog import Catalog, CatalogError


def detect_format(source: str | Path) -> str:
    """Guess the export format of ``source`` (a folder or file)."""
    if str(source) == "demo" or str(source).startswith("demo:"):
        return "demo"
    path = Path(source)
    if not path.exists():
        raise CatalogError(f"{path}: no such file or folder (use 'demo' for the built-in synthetic catalog)")
    names = [p.name for p in path.iterdir()] if path.is_dir() else [path.name]
    if any(n.startswith("meta_") for n in names) or any(n.endswith(("_5.json", "_5.json.gz")) for n in names):
        return "amazon"
    return "generic"


def load_catalog(source: str | Path, format: str | None = None, mapping: str | Path | None = None,
                 scale: float = 1.0, seed: int = 0, encoding: str | None = None, locale: str = "en") -> Catalog:
    """Load any supported export. ``source='demo'`` gives the built-in synthetic shop (in ``locale``: en
    or zh); ``encoding`` decodes generic text files (default: UTF-8, GB18030 detected)."""
    fmt = format or detect_format(source)
    if fmt == "demo":
        from kgrec.loaders.demo import generate_demo_catalog

        return generate_demo_catalog(scale=scale, seed=seed, locale=locale)
    if fmt == "amazon":
        from kgrec.loaders.amazon import load_amazon

        return load_amazon(source)
    if fmt == "generic":
        from kgrec.loaders.generic import load_generic

        return load_generic(source, mapping=mapping, encoding=encoding)
    raise CatalogError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
