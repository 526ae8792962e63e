"""A seeded generator of a realistic (SYNTHETIC) shop: the quickstart default and the benchmark source.

It plants the structure a knowledge-graph recommender should find: users have latent tastes over
subcategories, tags and brands; brands have a quality level that drives ratings; review wording
follows the rating; products have complementary categories (a camera buyer needs a memory card);
also_bought links come from that product knowledge, never from the generated purchases (which would
leak held-out interactions into the graph). ``scale=1`` gives about 1,500 users, 1,200 products and
20,000 interactions; interactions grow linearly with ``scale`` (``scale=50`` ≈ 1M).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from kgrec.data.catalog import Catalog, LoadReport

TREE: dict[str, dict[str, list[str]]] = {
    "Electronics": {
        "Headphones": ["earbuds", "headphones", "headset"],
        "Cameras": ["mirrorless camera", "action camera", "camera lens"],
        "Memory Cards": ["microSD card", "SD card", "card reader"],
        "Chargers": ["USB-C charger", "power bank", "charging cable"],
    },
    "Home & Kitchen": {
        "Cookware": ["frying pan", "saucepan", "dutch oven"],
        "Coffee": ["espresso machine", "burr grinder", "pour-over kettle"],
        "Bedding": ["duvet", "pillow", "sheet set"],
        "Storage": ["food container set", "spice rack", "pantry organizer"],
    },
    "Sports & Outdoors": {
        "Running": ["running shoes", "running vest", "sports watch"],
        "Camping": ["tent", "sleeping bag", "camping stove"],
        "Cycling": ["bike helmet", "bike light", "cycling gloves"],
        "Yoga": ["yoga mat", "yoga block", "resistance band"],
    },
    "Beauty": {
        "Skin Care": ["moisturiser", "serum", "sunscreen"],
        "Hair Care": ["shampoo", "conditioner", "hair oil"],
        "Fragrance": ["eau de parfum", "body mist", "cologne"],
        "Tools": ["hair dryer", "straightener", "makeup brush set"],
    },
    "Books": {
        "Cooking Books": ["cookbook", "baking guide", "coffee handbook"],
        "Travel Guides": ["city guide", "hiking guide", "phrasebook"],
        "Science": ["astronomy atlas", "physics primer", "biology handbook"],
        "Fiction": ["mystery novel", "fantasy novel", "short story collection"],
    },
}
COMPLEMENTS = [("Cameras", "Memory Cards"), ("Coffee", "Cooking Books"), ("Camping", "Travel Guides"),
               ("Running", "Headphones"), ("Cookware", "Cooking Books"), ("Cycling", "Chargers"),
               ("Skin Care", "Tools"), ("Yoga", "Running")]
TAGS = ["eco-friendly", "premium", "budget", "wireless", "waterproof", "handmade", "compact", "organic",
        "travel size", "bestseller", "vegan", "recycled", "lightweight", "heavy duty", "gift idea",
        "limited edition", "for beginners", "professional", "kids", "refillable"]
BRAND_STEMS = ["Nord", "Alba", "Kestrel", "Lumen", "Orca", "Pico", "Terra", "Vela", "Zephyr", "Bramble",
               "Cobalt", "Delta", "Ember", "Fjord", "Granite", "Harbor", "Iris", "Juniper", "Koa", "Larch"]
BRAND_SUFFIX = ["Labs", "Works", "& Co.", "Goods", "Studio", "Supply", "Outfitters", "Home"]
ADJECTIVES = ["Classic", "Pro", "Ultra", "Everyday", "Essential", "Signature", "Compact", "Deluxe", "Smart", "Pure"]
MATERIALS = ["aluminium", "stainless steel", "bamboo", "cotton", "recycled plastic", "glass", "leather", "silicone"]
COUNTRIES = ["Germany", "Japan", "Portugal", "Vietnam", "Mexico", "Canada", "Italy", "Korea"]
REVIEWS = {
    1: ["Terrible {noun}. It broke after two days and support never answered.",
        "Do not buy this {noun}. Cheap materials and it stopped working, total waste of money.",
        "Awful quality, the {noun} arrived damaged and I returned it."],
    2: ["Disappointed with this {noun}. It works but feels flimsy and overpriced.",
        "The {noun} is below expectations, poor finish and it already shows wear.",
        "Not great. The {noun} does the job badly and I would not buy it again."],
    3: ["The {noun} is okay. Nothing special, does what it says for the price.",
        "Average {noun}. Some things are fine, others could be better.",
        "Decent {noun} but not remarkable; it is fine for occasional use."],
    4: ["Good {noun}. Solid build and works well, only minor quibbles.",
        "Happy with this {noun}, it is well made and good value.",
        "Nice {noun}, works as described and feels sturdy."],
    5: ["Excellent {noun}! Fantastic quality, I love it and would buy it again.",
        "Absolutely great {noun}, works perfectly and exceeded my expectations.",
        "Best {noun} I have owned. Superb build, highly recommend it to everyone."],
}


def generate_demo_catalog(scale: float = 1.0, seed: int = 0, start: int = 1_577_836_800) -> Catalog:
    """Generate the synthetic demo shop. Deterministic for a given ``(scale, seed)``."""
    rng = np.random.default_rng(seed)
    n_users = max(50, int(1500 * scale))
    n_products = max(60, int(1200 * min(scale, 1.0) + 600 * max(scale - 1.0, 0.0) ** 0.85))
    subcats = [(top, sub) for top, subs in TREE.items() for sub in subs]
    sub_index = {sub: i for i, (_, sub) in enumerate(subcats)}
    n_sub = len(subcats)

    # brands: each covers one top category, with a quality level
    tops = list(TREE)
    brands = []
    for i in range(40):
        name = (
            f"{BRAND_STEMS[i % len(BRAND_STEMS)]} {BRAND_SUFFIX[(i * 7 + i // len(BRAND_STEMS)) % len(BRAND_SUFFIX)]}"
        )
        brands.append(
            {"brand_id": f"b{i:03d}", "name": name, "top": tops[i % len(tops)], "quality": rng.normal(0, 0.8)}
        )
    brands_by_top = {t: [b for b in brands if b["top"] == t] for t in tops}

    # products
    p_sub = rng.integers(0, n_sub, n_products)
    products, product_tags, product_categories, triples = [], [], [], []
    p_brand = np.empty(n_products, dtype=np.int64)
    p_quality = np.empty(n_products)
    p_tags = np.zeros((n_products, len(TAGS)), dtype=bool)
    brand_pos = {b["brand_id"]: i for i, b in enumerate(brands)}
    for p in range(n_products):
        top, sub = subcats[p_sub[p]]
        brand = brands_by_top[top][rng.integers(len(brands_by_top[top]))]
        p_brand[p] = brand_pos[brand["brand_id"]]
        p_quality[p] = brand["quality"] + rng.normal(0, 0.5)
        noun = TREE[top][sub][rng.integers(3)]
        tags = rng.choice(len(TAGS), size=rng.integers(1, 4), replace=False)
        p_tags[p, tags] = True
        tag_names = [TAGS[t] for t in tags]
        adj = ADJECTIVES[rng.integers(len(ADJECTIVES))]
        material = MATERIALS[rng.integers(len(MATERIALS))]
        country = COUNTRIES[rng.integers(len(COUNTRIES))]
        pid = f"P{p:06d}"
        products.append(
            {
                "product_id": pid,
                "title": f"{brand['name']} {adj} {noun.title()} {rng.integers(100, 999)}",
                "description": (
                    f"A {', '.join(tag_names)} {noun} from {brand['name']}, made of {material} in {country}. "
                    f"Part of our {sub.lower()} range for {top.lower()} lovers."
                ),
                "price": float(np.round(np.exp(rng.normal(3.3, 0.7)), 2)),
                "brand_id": brand["brand_id"],
            }
        )
        product_categories.append({"product_id": pid, "category_id": f"{top} > {sub}"})
        product_tags.extend({"product_id": pid, "tag_id": TAGS[t]} for t in tags)
        triples.append({"head_id": pid, "relation": "made_of", "tail_id": material, "kind": "product"})
        triples.append({"head_id": pid, "relation": "made_in", "tail_id": country, "kind": "product"})
    products_df = pd.DataFrame(products)

    # product knowledge: complementary and similar products (independent of the generated purchases)
    by_sub = [np.flatnonzero(p_sub == s) for s in range(n_sub)]
    complements = {}
    for a, b in COMPLEMENTS:
        complements.setdefault(sub_index[a], []).append(sub_index[b])
        complements.setdefault(sub_index[b], []).append(sub_index[a])
    links = []
    for p in range(n_products):
        for s, kind in [(c, "also_bought") for c in complements.get(p_sub[p], [])] + [(p_sub[p], "also_viewed")]:
            pool = by_sub[s][by_sub[s] != p]
            if len(pool):
                for q in rng.choice(pool, size=min(2, len(pool)), replace=False):
                    links.append({"src_id": f"P{p:06d}", "dst_id": f"P{q:06d}", "kind": kind})

    # users with latent tastes; interactions in time order (vectorised per user and subcategory)
    popularity = rng.pareto(1.5, n_products) + 1.0
    log_pop = np.log(popularity) * 0.5
    names = ["Alex", "Sam", "Robin", "Kim", "Jo", "Charlie", "Maria", "Yuki", "Noor", "Lena", "Omar", "Ines"]
    users = []
    cols: dict[str, list] = {"user_id": [], "product_id": [], "kind": [], "rating": [], "timestamp": [], "text": []}
    nouns = [products[p]["title"].split(" ", 2)[-1].rsplit(" ", 1)[0].lower() for p in range(n_products)]
    for u in range(n_users):
        uid = f"U{u:06d}"
        users.append({"user_id": uid, "name": f"{names[u % len(names)]} {chr(65 + (u // len(names)) % 26)}."})
        n_fav = rng.integers(1, 4)
        fav_sub = rng.choice(n_sub, size=n_fav, replace=False)
        sub_w = np.full(n_sub, 0.02)
        sub_w[fav_sub] = rng.dirichlet(np.ones(n_fav)) * 3
        for f in fav_sub:
            for c in complements.get(f, []):
                sub_w[c] += 0.4
        sub_w /= sub_w.sum()
        tag_pref = rng.normal(0, 1, len(TAGS)) * (rng.random(len(TAGS)) < 0.3)
        brand_pref = np.zeros(len(brands))
        brand_pref[rng.choice(len(brands), size=3, replace=False)] = 1.5
        length = int(np.clip(rng.lognormal(2.3, 0.6), 3, 120))
        subs = rng.choice(n_sub, size=length, p=sub_w)
        picks = np.empty(length, dtype=np.int64)
        for sub in np.unique(subs):
            at = np.flatnonzero(subs == sub)
            pool = by_sub[sub]
            logits = log_pop[pool] + p_tags[pool] @ tag_pref + brand_pref[p_brand[pool]] + 0.5 * p_quality[pool]
            prob = np.exp(logits - logits.max())
            picks[at] = pool[rng.choice(len(pool), size=len(at), p=prob / prob.sum())]
        _, first = np.unique(picks, return_index=True)
        picks = picks[np.sort(first)]  # each product once, in order of first pick
        n = len(picks)
        times = start + rng.integers(0, 200 * 86400) + np.cumsum(rng.exponential(5 * 86400, n)).astype(np.int64)
        match = p_tags[picks] @ tag_pref + brand_pref[p_brand[picks]] * 0.5
        ratings = np.clip(np.round(3.6 + 0.9 * p_quality[picks] + 0.4 * match + rng.normal(0, 0.7, n)), 1, 5)
        r = rng.random(n)
        kinds = np.where(r < 0.45, "purchase", np.where(r < 0.65, "rating", "review"))
        template = rng.integers(0, 3, n)
        cols["user_id"].extend([uid] * n)
        cols["product_id"].extend(f"P{p:06d}" for p in picks)
        cols["kind"].extend(kinds.tolist())
        cols["rating"].extend(np.where(kinds == "purchase", np.nan, ratings).tolist())
        cols["timestamp"].extend(times.tolist())
        cols["text"].extend(
            REVIEWS[int(rt)][tp].format(noun=nouns[p]) if k == "review" else None
            for p, rt, tp, k in zip(picks, ratings, template, kinds)
        )
    inter = pd.DataFrame(cols)

    categories = [{"category_id": top, "name": top, "parent_id": None} for top in TREE]
    categories += [{"category_id": f"{top} > {sub}", "name": sub, "parent_id": top} for top, sub in subcats]
    entities = [{"entity_id": m, "name": m} for m in MATERIALS + COUNTRIES]
    tables = {
        "users": pd.DataFrame(users),
        "products": products_df,
        "brands": pd.DataFrame([{"brand_id": b["brand_id"], "name": b["name"]} for b in brands]),
        "categories": pd.DataFrame(categories),
        "tags": pd.DataFrame({"tag_id": TAGS, "name": TAGS}),
        "entities": pd.DataFrame(entities),
        "product_categories": pd.DataFrame(product_categories),
        "product_tags": pd.DataFrame(product_tags),
        "product_links": pd.DataFrame(links),
        "triples": pd.DataFrame(triples),
        "interactions": inter,
    }
    report = LoadReport()
    report.rows_in["demo (synthetic)"] = len(inter)
    return Catalog.from_tables(tables, report, source=f"demo (synthetic, scale={scale}, seed={seed})", synthetic=True)
