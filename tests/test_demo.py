"""The demo shop generator: one shop per (scale, seed, locale), however many processes draw it."""
from __future__ import annotations

import pandas as pd

from kgrec.loaders import demo


def test_the_shop_is_the_same_whatever_the_worker_count(monkeypatch):
    monkeypatch.setattr(demo, "USER_BLOCK", 100)  # 750 users: 8 blocks, each from its own stream
    monkeypatch.setattr(demo, "PARALLEL_MIN_USERS", 10**9)
    serial = demo.generate_demo_catalog(scale=0.5)
    monkeypatch.setattr(demo, "PARALLEL_MIN_USERS", 0)  # forked workers (where there are 2+ cores)
    parallel = demo.generate_demo_catalog(scale=0.5)
    assert len(serial.interactions) > 5000
    for name, table in serial.tables.items():
        pd.testing.assert_frame_equal(table, parallel.tables[name], obj=name)
    other = demo.generate_demo_catalog(scale=0.5, seed=1)
    assert not other.interactions["product_id"].equals(serial.interactions["product_id"])


def test_reviews_follow_the_rating_and_name_the_product():
    cat = demo.generate_demo_catalog(scale=0.2)
    reviews = cat.interactions[cat.interactions["kind"] == "review"]
    assert len(reviews) > 100 and reviews["text"].notna().all()
    assert cat.interactions.loc[cat.interactions["kind"] != "review", "text"].isna().all()
    titles = cat.products.set_index("product_id")["title"]
    for _, row in reviews.head(200).iterrows():
        noun = demo.VOCABULARIES["en"].review_noun(titles[row["product_id"]], "", "")
        assert row["text"] in [w.format(noun=noun) for w in demo.REVIEWS[int(row["rating"])]]
