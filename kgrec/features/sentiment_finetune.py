"""Fine-tuning the transformer itself for review sentiment: LoRA adapters (``peft``) or all weights.

The classifier is the text encoder's mean-pooled, L2-normalised output followed by a 3-way linear head
— the same shape as the frozen-encoder head in :mod:`kgrec.features.sentiment`, which serves as its warm start,
so step 0 of fine-tuning already scores what the frozen head scores and early stopping (validation
macro-F1) can only keep an equal or better model. Loss: class-weighted cross-entropy (inverse label
frequency). Optimiser: AdamW with a linear decay. bf16 autocast on CUDA.

A saved model is a folder: ``head.safetensors``, the adapters (``adapter/``, LoRA) or the whole
encoder (``encoder/``, full fine-tuning; nothing for ``head``, the frozen base encoder), and a model
card (``card.json`` + ``MODEL_CARD.md``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kgrec.config import MAX_TEXT_TOKENS, MINILM
from kgrec.features.sentiment import LABELS, SentimentModel, class_weights, macro_f1
from kgrec.features.text import canonical_encoder, default_model_path
from kgrec.runtime import mean_pool

DEFAULT_LR = {"lora": 5e-4, "full": 3e-5}


def _resolve(base: str) -> str:
    return str(default_model_path()) if canonical_encoder(base) == MINILM else base


def _device(device: str) -> str:
    from kgrec.runtime import resolve_device

    return str(resolve_device(device))


class FineTunedSentiment:
    """Callable sentiment model over raw texts: ``proba(texts) -> [N, 3]``, ``score(texts) -> [N]`` in [-1, 1]."""

    def __init__(self, encoder, tokenizer, head, method: str, base: str, max_length: int = MAX_TEXT_TOKENS,
                 device: str = "cpu", card: dict | None = None):
        self.encoder, self.tokenizer, self.head = encoder, tokenizer, head
        self.method, self.base, self.max_length, self.device = method, base, max_length, device
        self.card = card or {}

    def _logits(self, texts: Sequence[str]):
        """``[B]`` texts → ``[B, 3]`` logits (grad enabled when the caller allows it)."""
        import torch

        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt").to(self.device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.startswith("cuda")):
            hidden = self.encoder(**enc).last_hidden_state  # [B, T, H]
        return self.head(mean_pool(hidden, enc["attention_mask"]))

    def proba(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        import torch

        self.encoder.eval()
        texts = [t if t else "" for t in texts]
        order = np.argsort([len(t) for t in texts])
        out = np.zeros((len(texts), 3), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                idx = order[s:s + batch_size]
                out[idx] = torch.softmax(self._logits([texts[i] for i in idx]), -1).cpu().numpy()
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        p = self.proba(texts)
        return p[:, 2] - p[:, 0]

    def save(self, path: str | Path) -> Path:
        """Write weights (safetensors) and the model card to ``path``."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()},
                  str(path / "head.safetensors"))
        if self.method == "lora":
            self.encoder.save_pretrained(path / "adapter")
        elif self.method == "full":
            self.encoder.save_pretrained(path / "encoder")
            self.tokenizer.save_pretrained(path / "encoder")
        card = {**self.card, "method": self.method, "base_model": self.base, "max_length": self.max_length,
                "labels": list(LABELS)}
        (path / "card.json").write_text(json.dumps(card, indent=2), encoding="utf-8")
        (path / "MODEL_CARD.md").write_text(_card_markdown(card), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> FineTunedSentiment:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        card_file = path / "card.json"
        if not card_file.exists():
            raise FileNotFoundError(f"{path} is not a saved sentiment model (no card.json)")
        card = json.loads(card_file.read_text(encoding="utf-8"))
        dev = _device(device)
        if card["method"] == "lora":
            from peft import PeftModel

            base_path = _resolve(card["base_model"])
            encoder = PeftModel.from_pretrained(AutoModel.from_pretrained(base_path), path / "adapter")
            tokenizer = AutoTokenizer.from_pretrained(base_path)
        elif card["method"] == "full":
            encoder = AutoModel.from_pretrained(path / "encoder")
            tokenizer = AutoTokenizer.from_pretrained(path / "encoder")
        else:  # "head": the frozen base encoder
            encoder = AutoModel.from_pretrained(_resolve(card["base_model"]))
            tokenizer = AutoTokenizer.from_pretrained(_resolve(card["base_model"]))
        state = load_file(str(path / "head.safetensors"))
        head = torch.nn.Linear(state["weight"].shape[1], 3)
        head.load_state_dict(state)
        return cls(encoder.to(dev).eval(), tokenizer, head.to(dev), card["method"], card["base_model"],
                   card.get("max_length", MAX_TEXT_TOKENS), dev, card)


def save_head(head_model: SentimentModel, base: str, path: str | Path, card: dict) -> Path:
    """The frozen-encoder head's weights (``head.safetensors``) and card, for an encoder that is not a
    transformers model (the multilingual USE): scoring it needs that encoder's vectors."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file({"weight": np.ascontiguousarray(head_model.weight, dtype=np.float32),
               "bias": np.ascontiguousarray(head_model.bias, dtype=np.float32)}, str(path / "head.safetensors"))
    card = {**card, "method": "head", "base_model": base, "labels": list(LABELS), **head_model.metrics}
    (path / "card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False), encoding="utf-8")
    (path / "MODEL_CARD.md").write_text(_card_markdown(card), encoding="utf-8")
    return path


def from_frozen_head(head_model: SentimentModel, base: str = MINILM, max_length: int = MAX_TEXT_TOKENS,
                     device: str = "auto") -> FineTunedSentiment:
    """Wrap a frozen-encoder :class:`SentimentModel` so it can score raw texts and be saved like the others."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    dev = _device(device)
    path = _resolve(base)
    head = torch.nn.Linear(head_model.weight.shape[1], 3)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(np.asarray(head_model.weight, dtype=np.float32)))
        head.bias.copy_(torch.from_numpy(np.asarray(head_model.bias, dtype=np.float32)))
    return FineTunedSentiment(AutoModel.from_pretrained(path).to(dev).eval(), AutoTokenizer.from_pretrained(path),
                              head.to(dev), "head", base, max_length, dev, dict(head_model.metrics))


def finetune_sentiment(texts: Sequence[str], labels: np.ndarray, base: str = MINILM, method: str = "lora",
                       init: SentimentModel | None = None, epochs: int = 2, batch_size: int = 16,
                       lr: float | None = None, max_length: int = MAX_TEXT_TOKENS, val_share: float = 0.1,
                       evals_per_epoch: int = 4, patience: int = 3, lora_rank: int = 8, seed: int = 0,
                       device: str = "auto", progress: bool = True) -> FineTunedSentiment:
    """Fine-tune ``base`` on labelled reviews (``labels`` 0/1/2, -1 = unlabelled and ignored).

    ``texts [N]``, ``labels [N]``. ``init`` (the frozen-encoder head) warm-starts the linear head. The
    best checkpoint by validation macro-F1 (evaluated ``evals_per_epoch`` times per epoch, and before
    the first step) is returned; ``patience`` evaluations without improvement stop training.
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    if method not in ("lora", "full"):
        raise ValueError(f"unknown fine-tuning method {method!r}; choose 'lora' or 'full'")
    keep = np.flatnonzero(np.asarray(labels) >= 0)
    y_all = np.asarray(labels)[keep]
    if len(keep) < 10 or len(np.unique(y_all)) < 2:
        raise ValueError("too few labelled reviews to fine-tune a sentiment model (need ≥ 10 with two classes)")
    texts = [texts[i] if texts[i] else "" for i in keep]
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(texts))
    n_val = max(1, int(len(texts) * val_share))
    val, tr = perm[:n_val], perm[n_val:]
    dev = _device(device)
    path = _resolve(base)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        targets = [n for n in ("query", "value", "q_proj", "v_proj", "q_lin", "v_lin")
                   if any(name.endswith(n) for name, _ in encoder.named_modules())]
        if not targets:
            raise ValueError(f"no attention projections found in {path!r} for LoRA; use --sentiment full")
        encoder = get_peft_model(encoder, LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.1,
                                                     target_modules=targets))
    head = torch.nn.Linear(encoder.config.hidden_size, 3)
    if init is not None:
        head.weight.data = torch.from_numpy(np.asarray(init.weight, dtype=np.float32)).clone()
        head.bias.data = torch.from_numpy(np.asarray(init.bias, dtype=np.float32)).clone()
    model = FineTunedSentiment(encoder.to(dev), tokenizer, head.to(dev), method, base, max_length, dev)

    counts = np.bincount(y_all[tr], minlength=3)
    class_w = class_weights(y_all[tr])
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_w.to(dev))
    params = [p for p in encoder.parameters() if p.requires_grad]
    step_lr = lr if lr is not None else DEFAULT_LR[method]
    opt = torch.optim.AdamW([{"params": params, "lr": step_lr}, {"params": head.parameters(), "lr": 1e-3}],
                            weight_decay=0.01)
    steps_per_epoch = (len(tr) + batch_size - 1) // batch_size
    total = steps_per_epoch * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / max(total, 1)))
    eval_at = {int(round(steps_per_epoch * k / evals_per_epoch)) for k in range(1, evals_per_epoch + 1)}
    val_texts = [texts[i] for i in val]

    def val_f1() -> float:
        return macro_f1(y_all[val], model.proba(val_texts).argmax(1))

    trainable = {**{f"enc.{k}": v for k, v in encoder.named_parameters() if v.requires_grad},
                 **{f"head.{k}": v for k, v in head.named_parameters()}}

    def trainable_state() -> dict:
        return {k: v.detach().clone() for k, v in trainable.items()}

    best, waited, history, step = val_f1(), 0, [], 0
    best_state = trainable_state()
    history.append({"step": 0, "val_macro_f1": best})
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"fine-tuning sentiment ({method})", unit="step", disable=None)
    start = time.perf_counter()
    stopped = False
    for _epoch in range(epochs):
        order = rng.permutation(tr)
        for b in range(steps_per_epoch):
            encoder.train()
            idx = order[b * batch_size:(b + 1) * batch_size]
            logits = model._logits([texts[i] for i in idx])
            loss = loss_fn(logits, torch.as_tensor(y_all[idx], device=dev))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params + list(head.parameters()), 1.0)
            opt.step()
            sched.step()
            step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", best_f1=f"{best:.3f}")
            if b + 1 in eval_at:
                f1 = val_f1()
                history.append({"step": step, "val_macro_f1": f1})
                if f1 > best:
                    best, best_state, waited = f1, trainable_state(), 0
                else:
                    waited += 1
                    if waited >= patience:
                        stopped = True
                        break
        if stopped:
            break
    if bar is not None:
        bar.close()
    with torch.no_grad():
        for k, v in best_state.items():
            trainable[k].copy_(v)
    encoder.eval()
    model.card = {
        "trained_on": {"reviews": int(len(tr)), "validation_reviews": int(len(val)),
                       "label_counts": {LABELS[i]: int(c) for i, c in enumerate(counts)}},
        "class_weights": class_w.tolist(),
        "hyperparameters": {"epochs": epochs, "batch_size": batch_size, "lr": step_lr, "head_lr": 1e-3,
                            "weight_decay": 0.01, "lora_rank": lora_rank if method == "lora" else None,
                            "seed": seed, "patience_evals": patience, "warm_start": init is not None},
        "trainable_parameters": int(sum(p.numel() for p in params) + sum(p.numel() for p in head.parameters())),
        "val_macro_f1": best, "history": history, "steps": step,
        "train_seconds": round(time.perf_counter() - start, 1), "device": dev,
    }
    return model


def _card_markdown(card: dict) -> str:
    if card["method"] == "tfidf":
        model = ("- Character 1–3-gram TF-IDF + logistic regression (scikit-learn), class-weighted; no text "
                 "encoder, any language.")
    else:
        model = (f"- Base encoder: `{card['base_model']}` (max {card.get('max_length', MAX_TEXT_TOKENS)} tokens), "
                 f"mean pooling, L2 norm, 3-way linear head ({', '.join(card['labels'])}).")
    labels_from = card.get("labels_from") or "ratings: " + json.dumps(card.get("thresholds", {}))
    lines = [f"# kgrec review-sentiment model ({card['method']})", "", model,
             "- Score = P(positive) − P(negative), in [-1, 1].",
             f"- Labels come from {labels_from}."]
    if "data" in card:
        lines.append(f"- Data: {card['data']}")
    if "trained_on" in card:
        lines.append(
            f"- Trained on {card['trained_on']['reviews']} reviews (+ {card['trained_on']['validation_reviews']} "
            f"for early stopping); label counts {json.dumps(card['trained_on']['label_counts'])}; "
            f"class-weighted cross-entropy {[f'{w:.2f}' for w in card.get('class_weights', [])]}."
        )
    if "hyperparameters" in card:
        lines.append("- Hyperparameters: " + json.dumps(card["hyperparameters"]))
    if "metrics" in card:
        lines += ["", "## Held-out metrics", "", "| model | accuracy | macro-F1 |", "|---|---|---|"]
        for name, m in card["metrics"].items():
            if isinstance(m, dict) and "accuracy" in m:
                lines.append(f"| {name} | {m['accuracy']:.3f} | {m['macro_f1']:.3f} |")
    lines.append("")
    return "\n".join(lines)
