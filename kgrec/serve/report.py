"""``kgrec report RUN_DIR``: one self-contained HTML file about a trained run (plotly charts).

Sections: test metrics of the model against the baselines, training curves (loss and validation
NDCG@10 per epoch), the distribution of the model's scores (all products vs the top 10 of sampled
users), review sentiment (distribution and by star rating), and for a few users their top
recommendations with a picture of the knowledge-graph paths that explain the first one.
The plotly.js library is embedded once, so the file opens offline.
"""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch

from kgrec.config import GNN_MODELS, METRICS
from kgrec.serve.recommend import Recommender

NODE_COLOURS = {"user": "#1f77b4", "product": "#ff7f0e", "category": "#2ca02c", "brand": "#d62728",
                "tag": "#9467bd", "entity": "#8c564b"}


def _metrics_figure(metrics: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    split = "test" if any(m["test"] for m in metrics["models"].values()) else "val"
    for name, m in metrics["models"].items():
        values = m[split] or {}
        fig.add_bar(name=name, x=list(METRICS), y=[values.get(c) for c in METRICS])
    fig.update_layout(barmode="group", title=f"{split} metrics, full ranking (higher is better)",
                      yaxis_title="value", legend_title="model", height=420)
    return fig


def _curves_figure(metrics: dict):
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss", "validation NDCG@10"))
    for name, m in metrics["models"].items():
        curve = m.get("curve") or []
        if not curve:
            continue
        epochs = [c["epoch"] for c in curve]
        fig.add_scatter(x=epochs, y=[c["loss"] for c in curve], name=f"{name} loss", mode="lines", row=1, col=1)
        fig.add_scatter(x=epochs, y=[c["val_ndcg@10"] for c in curve], name=f"{name} val NDCG@10", mode="lines",
                        row=1, col=2)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(title="training curves", height=420)
    return fig


def _scores_figure(rec: Recommender, users: torch.Tensor):
    import plotly.graph_objects as go

    scores = rec.score_matrix(users)  # [B, I]
    top = scores.topk(min(10, scores.shape[1]), dim=1).values
    fig = go.Figure()
    fig.add_histogram(x=scores.flatten().numpy(), name="all products", histnorm="probability density", opacity=0.6)
    fig.add_histogram(x=top.flatten().numpy(), name="top 10 per user", histnorm="probability density", opacity=0.6)
    fig.update_layout(barmode="overlay", title=f"model scores for {users.numel()} sampled users ({rec.served_name})",
                      xaxis_title="score", yaxis_title="density", height=380)
    return fig


def _sentiment_figure(attr: torch.Tensor | None):
    """``attr [E, 3]`` = (rating/5, has rating, sentiment) of the training interactions."""
    from plotly.subplots import make_subplots

    if attr is None or not bool((attr[:, 2] != 0).any()):
        return None
    has_text = attr[:, 2] != 0  # the model's score is exactly 0 only for interactions without review text
    sent = attr[has_text, 2].numpy()
    fig = make_subplots(rows=1, cols=2, subplot_titles=("review sentiment score", "sentiment by star rating"))
    fig.add_histogram(x=sent, nbinsx=40, name="reviews", row=1, col=1)
    rated = has_text & (attr[:, 1] > 0)
    if bool(rated.any()):
        stars = np.round(attr[rated, 0].numpy() * 5).astype(int)
        order = [f"{s}★" for s in sorted(set(stars.tolist()))]  # 1★ … 5★, not first-seen order
        fig.add_box(x=[f"{s}★" for s in stars], y=attr[rated, 2].numpy(), name="by rating", row=1, col=2)
        fig.update_xaxes(categoryorder="array", categoryarray=order, row=1, col=2)
    fig.update_layout(title=f"sentiment of {int(has_text.sum())} training reviews (P(pos) − P(neg))",
                      showlegend=False, height=380)
    return fig


def _path_figure(result: dict):
    """A picture of the explanation paths: nodes coloured by type, one trace per path."""
    import networkx as nx
    import plotly.graph_objects as go

    g = nx.Graph()
    for path in result["paths"]:
        keys = [f"{n['type']}:{n['id']}" for n in path["nodes"]]
        for n, key in zip(path["nodes"], keys):
            g.add_node(key, type=n["type"], id=n["id"])
        for (a, b), rel in zip(zip(keys, keys[1:]), path["relations"]):
            g.add_edge(a, b, relation=rel)
    pos = nx.spring_layout(g, seed=0)
    fig = go.Figure()
    ex, ey, mx, my, labels = [], [], [], [], []
    for a, b, d in g.edges(data=True):
        ex += [pos[a][0], pos[b][0], None]
        ey += [pos[a][1], pos[b][1], None]
        mx.append((pos[a][0] + pos[b][0]) / 2)
        my.append((pos[a][1] + pos[b][1]) / 2)
        labels.append(d["relation"])
    fig.add_scatter(x=ex, y=ey, mode="lines", line={"color": "#999", "width": 1.5}, hoverinfo="skip", showlegend=False)
    fig.add_scatter(x=mx, y=my, mode="text", text=labels, textfont={"size": 9, "color": "#666"}, hoverinfo="skip",
                    showlegend=False)
    for t in sorted({d["type"] for _, d in g.nodes(data=True)}):
        nodes = [k for k, d in g.nodes(data=True) if d["type"] == t]
        fig.add_scatter(x=[pos[k][0] for k in nodes], y=[pos[k][1] for k in nodes], mode="markers+text", name=t,
                        text=[g.nodes[k]["id"][:24] for k in nodes], textposition="top center",
                        marker={"size": 16, "color": NODE_COLOURS.get(t, "#333")})
    fig.update_layout(title=f"why {result['product_id']} for {result['user_id']}", height=360,
                      xaxis={"visible": False}, yaxis={"visible": False}, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def _cell(value) -> str:
    """Numbers with 3 decimals (a score, not 15 digits of float noise)."""
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _table(rows: list[dict], cols: tuple[str, ...]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def build_report(
    run_dir: str | Path, out: str | Path | None = None, users: int = 3, sample: int = 200, seed: int = 0
) -> Path:
    """Write the report; returns its path (default ``RUN_DIR/report.html``)."""
    import plotly.io as pio

    run = Path(run_dir)
    rec = Recommender.load(run)
    metrics = rec.run.metrics
    graph = rec.graph
    gen = torch.Generator().manual_seed(seed)
    sampled = torch.randperm(len(rec.user_ids), generator=gen)[:sample]
    figures: list[tuple[str, object, str]] = [
        ("Model against the baselines", _metrics_figure(metrics), "metrics"),
        ("Training", _curves_figure(metrics), "curves"),
        ("Scores", _scores_figure(rec, sampled), "scores"),
    ]
    sent = _sentiment_figure(graph.get("target_edge_attr"))
    if sent is not None:
        figures.append(("Review sentiment", sent, "sentiment"))

    explainer = None
    if rec.model_name in GNN_MODELS:
        from kgrec.serve.explain import Explainer

        explainer = Explainer.load(run, rec)
    user_sections = []
    with_history = [u for u in sampled.tolist() if rec.train.of(u).numel() > 0][:users]
    for u in with_history:
        user = rec.user_ids[u]
        recs = rec.recommend(user, k=5)
        section = f"<h3>user {html.escape(user)}</h3>" + _table(
            recs, ("rank", "product_id", "title", "score", "reason")
        )
        if explainer is not None and recs:
            result = explainer.explain(user, recs[0]["product_id"], top=3, candidates=20)
            if result["paths"]:
                fig = _path_figure(result)
                sentences = "".join(
                    f"<li>{html.escape(p['sentence'])} <small>(importance {p['importance']:+.4f})</small></li>"
                    for p in result["paths"]
                )
                section += (
                    f'<div class="explanation" data-user="{html.escape(user)}">'
                    + pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"explain-{u}")
                    + f"<ol>{sentences}</ol></div>"
                )
        user_sections.append(section)

    parts = []
    for title, fig, key in figures:
        parts.append(
            f'<section class="chart" id="{key}"><h2>{html.escape(title)}</h2>'
            + pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=f"chart-{key}")
            + "</section>"
        )
    summary = {k: metrics.get(k) for k in ("dataset", "split", "seed")}
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kgrec report: {html.escape(str(run.name))}</title>
<script type="text/javascript">{_plotly_js()}</script>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ddd;padding:4px 8px;font-size:14px}}
th{{background:#f4f4f4}}small{{color:#777}}</style></head>
<body><h1>kgrec report</h1>
<p>Run <code>{html.escape(str(run))}</code>: model <b>{html.escape(rec.served_name)}</b>,
dataset {html.escape(str(summary["dataset"]))}{" (synthetic demo catalog)" if metrics.get("synthetic") else ""},
split {html.escape(str(summary["split"]))}, seed {summary["seed"]}.</p>
{"".join(parts)}
<section id="users"><h2>Recommendations and their explanations</h2>
<p>The top 5 products for a few users with a reason each, and the knowledge-graph paths that explain
the first one, ranked by the model's score drop when the path is removed.</p>
{"".join(user_sections) or "<p>No user with training history was sampled.</p>"}</section>
</body></html>"""
    path = Path(out) if out else run / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()
