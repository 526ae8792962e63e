"""Text encoder cache, a custom encoder by local path, and the sentiment report on real reviews."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from kgrec.features.build import compute_features, product_texts
from kgrec.features.text import TextEncoder


def test_cache_reencodes_only_changed_texts(tmp_path, small_demo):
    enc = TextEncoder(cache_dir=tmp_path / "cache")
    texts = product_texts(small_demo)
    first = enc(texts)
    assert enc.encoded_last_call == len(set(texts))
    again = enc(texts)
    assert enc.encoded_last_call == 0 and np.array_equal(first, again)
    changed = list(texts)
    changed[3] = changed[3] + " Now in a new colour."
    third = enc(changed)
    assert enc.encoded_last_call == 1
    assert np.array_equal(np.delete(third, 3, 0), np.delete(first, 3, 0))
    assert not np.allclose(third[3], first[3])
    assert np.allclose(np.linalg.norm(third, axis=1), 1.0, atol=1e-5)


def _tiny_bert(path):
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(
        "a the mug red blue pot tea great terrible good bad camera pan brand category kitchen".split()))
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(path / "vocab.txt")).save_pretrained(path)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=160)
    BertModel(config).save_pretrained(path)
    return path


def test_whole_feature_path_with_local_encoder(tmp_path, small_demo):
    path = _tiny_bert(tmp_path / "tiny-bert")
    enc = TextEncoder(str(path), cache_dir=tmp_path / "cache")
    assert enc.dim == 32
    feats = compute_features(small_demo, np.arange(len(small_demo.interactions)), enc, seed=0)
    assert feats.x["product"].shape == (len(small_demo.products), 32 + len(feats.columns["product"]))
    assert feats.x["category"].shape[1] == 32
    assert feats.sentiment["enabled"]
    out = run_cli("features", "demo", "--scale", "0.1", "--out", str(tmp_path / "f"), "--encoder", str(path), "--json",
                  env={"KGREC_CACHE": str(tmp_path / "cache2")})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["embedding_dim"] == 32
    assert (tmp_path / "f" / "sentiment_report.json").exists()


def test_unknown_encoder_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot load text encoder"):
        TextEncoder(str(tmp_path / "no-such-model"), cache_dir=tmp_path)(["x"])


def test_sentiment_report_on_magazine_reviews(magazine):
    from kgrec.features.report import sentiment_report
    from kgrec.features.sentiment import review_labels
    from kgrec.loaders import load_catalog

    cat = load_catalog(magazine)
    reviews = cat.interactions[cat.interactions["text"].notna()]
    texts = reviews["text"].astype(str).tolist()
    ratings = reviews["rating"].to_numpy(dtype="float64")
    rep = sentiment_report(texts, review_labels(ratings), TextEncoder("minilm"), ratings=ratings, seed=0)
    assert rep["n_test"] == int(0.2 * (rep["n_train"] + rep["n_test"]))
    assert set(rep["methods"]) == {"head", "tfidf"} and rep["requested"] == "auto"
    best = max(rep["methods"], key=lambda m: rep["methods"][m]["val_macro_f1"])
    assert rep["method"] == best and rep["trained"]["macro_f1"] == rep["methods"][best]["macro_f1"]
    assert rep["trained"]["macro_f1"] > rep["lexicon"]["macro_f1"] > rep["majority"]["macro_f1"]
    assert rep["spearman_score_rating"] > 0.3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_finetuned_sentiment_trains_saves_and_reloads(tmp_path, small_demo, method):
    """Fine-tuning (tiny local BERT) starts from the frozen head, never ends below it on validation,
    and a saved model with its card reloads to the same scores."""
    from kgrec.features.report import sentiment_report
    from kgrec.features.sentiment import review_labels
    from kgrec.features.sentiment_finetune import FineTunedSentiment

    path = _tiny_bert(tmp_path / "tiny-bert")
    reviews = small_demo.interactions[small_demo.interactions["text"].notna()].head(300)
    texts = reviews["text"].astype(str).tolist()
    ratings = reviews["rating"].to_numpy(dtype="float64")
    enc = TextEncoder(str(path), cache_dir=tmp_path / "cache")
    rep = sentiment_report(texts, review_labels(ratings), enc, ratings=ratings, method=method, epochs=1,
                           save_dir=tmp_path / "model", data="demo")
    assert rep["method"] == method and {"trained", "frozen_head", "lexicon", "majority"} <= set(rep)
    ft = rep["fine_tuning"]
    assert ft["steps"] > 0 and ft["trainable_parameters"] > 0
    assert (
        ft["val_macro_f1"] >= json.loads((tmp_path / "model" / "card.json").read_text())["history"][0]["val_macro_f1"]
    )
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    assert card["method"] == method and card["trained_on"]["reviews"] > 0 and "trained" in card["metrics"]
    assert (tmp_path / "model" / "MODEL_CARD.md").read_text().startswith("# kgrec review-sentiment model")
    assert (tmp_path / "model" / ("adapter" if method == "lora" else "encoder")).is_dir()
    model = FineTunedSentiment.load(tmp_path / "model", device="cpu")
    scores = model.score(texts[:20])
    assert scores.shape == (20,) and np.all(np.abs(scores) <= 1)
    again = FineTunedSentiment.load(tmp_path / "model", device="cpu").score(texts[:20])
    np.testing.assert_allclose(scores, again, atol=1e-6)
