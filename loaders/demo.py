"""A seeded generator of a realistic (SYNTHETIC) shop: the quickstart default and the benchmark source.

It plants the structure a knowledge-graph recommender should find: users have latent tastes over
subcategories, tags and brands; brands have a quality level that drives ratings; review wording
follows the rating; products have complementary categories (a camera buyer needs a memory card);
also_bought links come from that product knowledge, never from the generated purchases (which would
leak held-out interactions into the graph). ``scale=1`` gives about 1,500 users, 1,200 products and
20,000 interactions; interactions grow linearly with ``scale`` (``scale=50`` ≈ 1M).

``locale="zh"`` generates the same shop in Chinese: product names, category paths, brands, tags, user
names and reviews. Where the public ChineseNlpCorpus review set ``online_shopping_10_cats`` is found
(``KGREC_ZH_REVIEWS``, or ``../shared/datasets/zh-online-shopping-reviews`` beside the repository),
reviews of the matching categories (phones, tablets, computers, milk, fruit, clothes, shampoo, water
heaters, books) are real review texts with their positive/negative labels, chosen to agree with the
generated rating; the others come from templates. Every Chinese review carries a ``sentiment`` label.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.data.catalog import Catalog, CatalogError, LoadReport

LOCALES = ("en", "zh")

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


@dataclass(frozen=True)
class Vocabulary:
    """The words of one locale's shop; the generator's random draws are the same for every locale."""

    tree: dict[str, dict[str, list[str]]]
    complements: list[tuple[str, str]]
    tags: list[str]
    adjectives: list[str]
    materials: list[str]
    countries: list[str]
    reviews: dict[int, list[str]]
    brand_name: Callable[[int, str], str]  # (brand number, top category) → name
    title: Callable[[str, str, str, int], str]  # (brand, adjective, noun, model number) → title
    description: Callable[[str, str, str, list[str], str, str], str]  # (brand, noun, material, tags, country, path)
    review_noun: Callable[[str, str, str], str]  # (title, adjective, noun) → how a review names it
    user_name: Callable[[int], str]
    separator: str = " > "


_EN_NAMES = ["Alex", "Sam", "Robin", "Kim", "Jo", "Charlie", "Maria", "Yuki", "Noor", "Lena", "Omar", "Ines"]
EN = Vocabulary(
    TREE, COMPLEMENTS, TAGS, ADJECTIVES, MATERIALS, COUNTRIES, REVIEWS,
    brand_name=lambda i, top: f"{BRAND_STEMS[i % len(BRAND_STEMS)]} "
                              f"{BRAND_SUFFIX[(i * 7 + i // len(BRAND_STEMS)) % len(BRAND_SUFFIX)]}",
    title=lambda brand, adj, noun, number: f"{brand} {adj} {noun.title()} {number}",
    description=lambda brand, noun, material, tags, country, path: (
        f"A {', '.join(tags)} {noun} from {brand}, made of {material} in {country}. "
        f"Part of our {path.split(' > ')[1].lower()} range for {path.split(' > ')[0].lower()} lovers."),
    review_noun=lambda title, adj, noun: title.split(" ", 2)[-1].rsplit(" ", 1)[0].lower(),
    user_name=lambda u: f"{_EN_NAMES[u % len(_EN_NAMES)]} {chr(65 + (u // len(_EN_NAMES)) % 26)}.",
)
# ---------------------------------------------------------------------------- the Chinese shop (--locale zh)
ZH_TREE: dict[str, dict[str, list[str]]] = {
    "数码电子": {
        "手机": ["智能手机", "老人手机", "游戏手机"],
        "平板电脑": ["平板电脑", "学习平板", "绘画平板"],
        "笔记本电脑": ["轻薄笔记本", "游戏本", "商务笔记本"],
        "耳机": ["蓝牙耳机", "头戴式耳机", "运动耳机"],
    },
    "食品饮料": {
        "牛奶乳品": ["纯牛奶", "酸奶", "高钙奶"],
        "水果": ["红富士苹果", "赣南脐橙", "猕猴桃"],
        "零食": ["每日坚果", "苏打饼干", "黑巧克力"],
        "茶叶": ["西湖龙井", "正山小种", "铁观音"],
    },
    "服饰鞋包": {
        "衣服": ["纯棉T恤", "羽绒服", "连衣裙"],
        "鞋靴": ["跑步鞋", "帆布鞋", "皮鞋"],
        "箱包": ["双肩包", "拉杆箱", "钱包"],
        "配饰": ["围巾", "棒球帽", "手表带"],
    },
    "家居家电": {
        "洗发护理": ["洗发水", "护发素", "沐浴露"],
        "热水器": ["电热水器", "燃气热水器", "即热式热水器"],
        "厨房电器": ["电饭煲", "空气炸锅", "豆浆机"],
        "床上用品": ["蚕丝被", "乳胶枕", "四件套"],
    },
    "图书音像": {
        "小说": ["武侠小说", "科幻小说", "推理小说"],
        "历史": ["中国通史", "世界史", "人物传记"],
        "少儿": ["儿童绘本", "科普百科", "拼音读物"],
        "教辅": ["英语词汇书", "数学练习册", "考研真题"],
    },
}
ZH_COMPLEMENTS = [("手机", "耳机"), ("茶叶", "零食"), ("平板电脑", "少儿"), ("笔记本电脑", "箱包"),
                  ("牛奶乳品", "水果"), ("鞋靴", "衣服"), ("洗发护理", "床上用品"), ("教辅", "小说")]
ZH_TAGS = ["环保", "高端", "平价", "无线", "防水", "手工", "便携", "有机", "旅行装", "爆款", "纯素", "可回收",
           "轻便", "耐用", "送礼佳品", "限量版", "新手入门", "专业级", "儿童", "可替换装"]
ZH_BRANDS: dict[str, list[str]] = {
    "数码电子": ["华为", "小米", "联想", "荣耀", "漫步者", "OPPO", "vivo", "魅族"],
    "食品饮料": ["蒙牛", "伊利", "光明", "三只松鼠", "良品铺子", "百草味", "八马", "佳沛"],
    "服饰鞋包": ["李宁", "安踏", "回力", "波司登", "优衣库", "新秀丽", "七匹狼", "森马"],
    "家居家电": ["美的", "海尔", "格力", "九阳", "苏泊尔", "飞科", "海飞丝", "罗莱"],
    "图书音像": ["人民文学出版社", "中华书局", "商务印书馆", "译林出版社", "新星出版社", "接力出版社",
                 "外研社", "高等教育出版社"],
}
ZH_ADJECTIVES = ["经典", "专业", "超薄", "日常", "精选", "臻享", "轻巧", "豪华", "智能", "纯净"]
ZH_MATERIALS = ["铝合金", "不锈钢", "竹纤维", "纯棉", "再生塑料", "玻璃", "真皮", "硅胶"]
ZH_COUNTRIES = ["中国", "日本", "德国", "越南", "意大利", "韩国", "新西兰", "美国"]
ZH_REVIEWS = {
    1: ["这个{noun}太差了，用了两天就坏了，客服也不理人。", "千万别买这个{noun}，做工粗糙，完全是浪费钱。",
        "质量很差，{noun}收到时就是坏的，已经退货。"],
    2: ["对这个{noun}有点失望，能用但是做工一般，价格偏贵。", "{noun}不如预期，细节粗糙，已经有磨损了。",
        "不太好，{noun}效果差，不会再买了。"],
    3: ["{noun}还行吧，没什么特别的，这个价格算正常。", "一般般的{noun}，有的地方不错，有的地方还能改进。",
        "{noun}中规中矩，偶尔用用可以。"],
    4: ["{noun}不错，做工扎实，用起来很顺手，小问题不影响。", "挺满意的{noun}，质量好，性价比高。",
        "{noun}很好，和描述一致，感觉很结实。"],
    5: ["非常棒的{noun}！质量超好，很喜欢，还会回购。", "{noun}太好用了，完全超出预期，强烈推荐。",
        "用过最好的{noun}，做工精细，推荐给大家。"],
}
ZH_USER_NAMES = ["小王", "小李", "小张", "小刘", "小陈", "小杨", "小赵", "小黄", "小周", "小吴", "小徐", "小孙"]
# the demo's subcategories whose reviews can come from the real corpus, and its category names
ZH_REVIEW_CATEGORIES = {"手机": "手机", "平板电脑": "平板", "笔记本电脑": "计算机", "牛奶乳品": "蒙牛", "水果": "水果",
                        "衣服": "衣服", "洗发护理": "洗发水", "热水器": "热水器", "小说": "书籍", "历史": "书籍"}

ZH = Vocabulary(
    ZH_TREE, ZH_COMPLEMENTS, ZH_TAGS, ZH_ADJECTIVES, ZH_MATERIALS, ZH_COUNTRIES, ZH_REVIEWS,
    brand_name=lambda i, top: ZH_BRANDS[top][i // len(ZH_TREE)],
    title=lambda brand, adj, noun, number: f"{brand} {adj}{noun} {number}款",
    description=lambda brand, noun, material, tags, country, path: (
        f"{brand}出品的{'、'.join(tags)}{noun}，{country}制造，{material}材质。属于{path.replace(' > ', '·')}系列。"),
    review_noun=lambda title, adj, noun: noun,
    user_name=lambda u: f"{ZH_USER_NAMES[u % len(ZH_USER_NAMES)]}{u // len(ZH_USER_NAMES) + 1}",
)
VOCABULARIES = {"en": EN, "zh": ZH}


def zh_reviews_path() -> Path | None:
    """The real Chinese review corpus: ``KGREC_ZH_REVIEWS`` (a file or its folder), else the shared
    datasets folder beside the repository; ``None`` when neither exists."""
    given = os.environ.get("KGREC_ZH_REVIEWS")
    candidates = [Path(given)] if given else [
        Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "zh-online-shopping-reviews"]
    for path in candidates:
        if path.is_dir():
            path = path / "online_shopping_10_cats.csv.gz"
        if path.is_file():
            return path
        if given:
            raise CatalogError(f"KGREC_ZH_REVIEWS={given}: no online_shopping_10_cats.csv(.gz) there")
    return None


def _real_reviews(path: Path) -> dict[tuple[str, int], list[str]]:
    """``{(category, label 0/1): [review, …]}`` from the corpus (header ``cat,label,review``)."""
    df = pd.read_csv(path, dtype={"cat": str, "review": str}, keep_default_na=False)
    if not {"cat", "label", "review"} <= set(df.columns):
        raise CatalogError(f"{path}: expected the columns cat,label,review of online_shopping_10_cats")
    df["review"] = df["review"].str.replace("\ufeff", "", regex=False).str.strip()
    df = df[df["review"].str.len() > 0]
    return {(cat, int(label)): g["review"].tolist() for (cat, label), g in df.groupby(["cat", "label"])}


def _localise_reviews(inter: pd.DataFrame, product_sub: dict[str, str], seed: int) -> tuple[pd.DataFrame, str]:
    """Chinese reviews: real texts for the corpus's categories where it is present, a sentiment label on
    every review. Returns the table and where the texts came from."""
    is_review = inter["text"].notna().to_numpy()
    rating = inter["rating"].to_numpy(dtype="float64")
    label = np.where(rating >= 4, "positive", np.where(rating <= 2, "negative", "neutral"))
    inter["sentiment"] = np.where(is_review, label, None)
    path = zh_reviews_path()
    if path is None:
        return inter, "templates (the real review corpus was not found)"
    pools = _real_reviews(path)
    rng = np.random.default_rng(seed + 7919)  # its own stream: the shop itself stays the same
    texts = inter["text"].to_numpy(dtype=object).copy()
    replaced = 0
    for i in np.flatnonzero(is_review & (label != "neutral")):
        cat = ZH_REVIEW_CATEGORIES.get(product_sub[inter["product_id"].iat[i]])
        pool = pools.get((cat, int(label[i] == "positive"))) if cat else None
        if pool:
            texts[i] = pool[rng.integers(len(pool))]
            replaced += 1
    inter["text"] = texts
    return inter, f"{replaced} real reviews from {path.name}, {int(is_review.sum()) - replaced} from templates"


def _choice(rng: np.random.Generator, p: np.ndarray, size: int) -> np.ndarray:
    """``rng.choice(len(p), size, p=p)`` (with replacement) without its argument checks: the same
    draws from the same stream (inverse CDF of ``size`` uniforms), a fraction of the cost per call."""
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf.searchsorted(rng.random(size), side="right")


USER_BLOCK = 4096  # users per random stream: the shop is the same whatever the number of worker processes
PARALLEL_MIN_USERS = 8 * USER_BLOCK  # below this, one process draws every block


@dataclass(frozen=True)
class _Tastes:
    """What a user's draws depend on (the catalog side, fixed before any user is drawn)."""

    n_sub: int
    n_brands: int
    start: int  # epoch seconds of the first possible interaction
    complements: tuple[tuple[int, ...], ...]  # per subcategory, its complementary subcategories
    by_sub: tuple[np.ndarray, ...]  # per subcategory, its products
    pool_base: tuple[np.ndarray, ...]  # per subcategory, popularity + quality logit of its products
    pool_tags: tuple[np.ndarray, ...]  # per subcategory, [products, tags] 0/1
    pool_brand: tuple[np.ndarray, ...]  # per subcategory, brand of its products
    p_tags: np.ndarray  # [products, tags] bool
    p_brand: np.ndarray  # [products]

    def draw(self, rng: np.random.Generator, n_users: int) -> tuple[np.ndarray, ...]:
        """Draw ``n_users`` users' histories from ``rng``: (lengths ``[n_users]``, then per interaction in
        user and time order: product, time, taste match, rating noise, kind uniform, review template)."""
        n_sub, n_tags = self.n_sub, self.p_tags.shape[1]
        parts: list[list[np.ndarray]] = [[] for _ in range(6)]
        lengths = np.empty(n_users, dtype=np.int64)
        for u in range(n_users):
            n_fav = rng.integers(1, 4)
            fav_sub = rng.choice(n_sub, size=n_fav, replace=False)
            sub_w = np.full(n_sub, 0.02)
            sub_w[fav_sub] = rng.dirichlet(np.ones(n_fav)) * 3
            for f in fav_sub:
                for c in self.complements[f]:
                    sub_w[c] += 0.4
            sub_w /= sub_w.sum()
            tag_pref = rng.normal(0, 1, n_tags) * (rng.random(n_tags) < 0.3)
            brand_pref = np.zeros(self.n_brands)
            brand_pref[rng.choice(self.n_brands, size=3, replace=False)] = 1.5
            length = int(min(max(rng.lognormal(2.3, 0.6), 3), 120))
            subs = _choice(rng, sub_w, length)
            picks = np.empty(length, dtype=np.int64)
            order = np.argsort(subs, kind="stable")  # positions grouped by subcategory, ascending
            bounds = np.flatnonzero(np.diff(subs[order])) + 1
            for at in np.split(order, bounds):
                sub = subs[at[0]]
                logits = self.pool_base[sub] + self.pool_tags[sub] @ tag_pref + brand_pref[self.pool_brand[sub]]
                prob = np.exp(logits - logits.max())
                picks[at] = self.by_sub[sub][_choice(rng, prob / prob.sum(), len(at))]
            picks = np.fromiter(dict.fromkeys(picks.tolist()), dtype=np.int64)  # each product once, first pick's
            n = len(picks)
            first = self.start + rng.integers(0, 200 * 86400)
            times = first + np.cumsum(rng.exponential(5 * 86400, n)).astype(np.int64)
            match = self.p_tags[picks] @ tag_pref + brand_pref[self.p_brand[picks]] * 0.5
            draws = (picks, times, match, rng.normal(0, 0.7, n), rng.random(n), rng.integers(0, 3, n))
            for part, values in zip(parts, draws):
                part.append(values)
            lengths[u] = n
        return (lengths, *(np.concatenate(part) for part in parts))


def _block_rng(seed: int, block: int) -> np.random.Generator:
    """The random stream of users ``block·USER_BLOCK …``."""
    return np.random.default_rng([seed, 1, block])


_WORKER_TASTES: _Tastes | None = None  # set once per worker process (ProcessPoolExecutor initializer)


def _set_worker_tastes(tastes: _Tastes) -> None:
    global _WORKER_TASTES
    _WORKER_TASTES = tastes


def _draw_in_worker(seed: int, block: int, n_users: int) -> tuple[np.ndarray, ...]:
    return _WORKER_TASTES.draw(_block_rng(seed, block), n_users)


def _draw_users(tastes: _Tastes, n_users: int, seed: int) -> tuple[np.ndarray, ...]:
    """Every user's draws, block ``b`` (users ``b·USER_BLOCK …``) from its own stream ``(seed, 1, b)``,
    so blocks can be drawn in parallel worker processes (forked, where the platform allows; each
    receives ``tastes`` once) and concatenated in order: the same shop whatever the number of processes."""
    sizes = [min(USER_BLOCK, n_users - lo) for lo in range(0, n_users, USER_BLOCK)]
    workers = min(len(sizes), len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    if n_users < PARALLEL_MIN_USERS or workers < 2 or "fork" not in mp.get_all_start_methods():
        blocks = [tastes.draw(_block_rng(seed, b), size) for b, size in enumerate(sizes)]
    else:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_set_worker_tastes,
                                 initargs=(tastes,)) as pool:
            blocks = list(pool.map(_draw_in_worker, [seed] * len(sizes), range(len(sizes)), sizes))
    return tuple(np.concatenate(column) for column in zip(*blocks))


def generate_demo_catalog(scale: float = 1.0, seed: int = 0, start: int = 1_577_836_800,
                          locale: str = "en") -> Catalog:
    """Generate the synthetic demo shop in ``locale`` (en or zh). Deterministic for a given
    ``(scale, seed, locale)``; the zh shop also depends on whether the real review corpus is present."""
    if locale not in VOCABULARIES:
        raise CatalogError(f"unknown demo locale {locale!r}; choose one of {', '.join(LOCALES)}")
    v = VOCABULARIES[locale]
    TREE, COMPLEMENTS, TAGS, ADJECTIVES, MATERIALS, COUNTRIES, REVIEWS = (
        v.tree, v.complements, v.tags, v.adjectives, v.materials, v.countries, v.reviews)
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
        name = v.brand_name(i, tops[i % len(tops)])
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
    nouns: list[str] = []  # how reviews name each product
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
        title = v.title(brand["name"], adj, noun, rng.integers(100, 999))
        nouns.append(v.review_noun(title, adj, noun))
        products.append(
            {
                "product_id": pid,
                "title": title,
                "description": v.description(brand["name"], noun, material, tag_names, country, f"{top} > {sub}"),
                "price": float(np.round(np.exp(rng.normal(3.3, 0.7)), 2)),
                "brand_id": brand["brand_id"],
            }
        )
        product_categories.append({"product_id": pid, "category_id": f"{top}{v.separator}{sub}"})
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

    # users with latent tastes; interactions in time order, drawn in blocks of users (see _Tastes.draw)
    popularity = rng.pareto(1.5, n_products) + 1.0
    log_pop = np.log(popularity) * 0.5
    tastes = _Tastes(
        n_sub=n_sub, n_brands=len(brands), start=start,
        complements=tuple(tuple(complements.get(s, ())) for s in range(n_sub)),
        by_sub=tuple(by_sub),
        pool_base=tuple(log_pop[pool] + 0.5 * p_quality[pool] for pool in by_sub),
        pool_tags=tuple(p_tags[pool].astype(np.float64) for pool in by_sub),
        pool_brand=tuple(p_brand[pool] for pool in by_sub),
        p_tags=p_tags, p_brand=p_brand,
    )
    lengths, picks, times, match, noise, r, template = _draw_users(tastes, n_users, seed)
    users = [{"user_id": f"U{u:06d}", "name": v.user_name(u)} for u in range(n_users)]
    ratings = np.clip(np.round(3.6 + 0.9 * p_quality[picks] + 0.4 * match + noise), 1, 5)
    kind_code = np.where(r < 0.45, 0, np.where(r < 0.65, 1, 2))  # purchase, rating, review
    product_ids = np.array([f"P{p:06d}" for p in range(n_products)], dtype=object)
    user_ids = np.array([row["user_id"] for row in users], dtype=object)
    text = np.full(len(picks), None, dtype=object)
    reviews = np.flatnonzero(kind_code == 2)
    # one string per distinct (rating, template, product) of the reviews
    key = (ratings[reviews].astype(np.int64) * 3 + template[reviews]) * n_products + picks[reviews]
    distinct, where = np.unique(key, return_inverse=True)
    wording = [REVIEWS[k // n_products // 3][k // n_products % 3].format(noun=nouns[k % n_products])
               for k in distinct.tolist()]
    text[reviews] = np.array(wording, dtype=object)[where]
    cols = {
        "user_id": user_ids[np.repeat(np.arange(n_users), lengths)],
        "product_id": product_ids[picks],
        "kind": np.array(["purchase", "rating", "review"], dtype=object)[kind_code],
        "rating": np.where(kind_code == 0, np.nan, ratings),
        "timestamp": times,
        "text": text,
    }
    inter = pd.DataFrame(cols)
    review_source = "templates"
    if locale == "zh":
        product_sub = {f"P{p:06d}": subcats[p_sub[p]][1] for p in range(n_products)}
        inter, review_source = _localise_reviews(inter, product_sub, seed)

    categories = [{"category_id": top, "name": top, "parent_id": None} for top in TREE]
    categories += [{"category_id": f"{top}{v.separator}{sub}", "name": sub, "parent_id": top} for top, sub in subcats]
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
    label = f"demo (synthetic, scale={scale}, seed={seed}" + (f", locale={locale}; reviews: {review_source})"
                                                              if locale != "en" else ")")
    return Catalog.from_tables(tables, report, source=label, synthetic=True)
