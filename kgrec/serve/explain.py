"""Explanations: knowledge-graph paths (≤ 3 hops) from a user to a recommended product, ranked by how
much the model's score drops when the path's edges are removed from the message-passing graph.

Each path comes with a sentence a shopper understands and a parameterised Cypher query that returns
exactly that path in Neo4j (paths through derived edges, which are not stored in Neo4j, have none,
unless the schema says which stored edge holds their pairs: ``recently_chose`` is matched as the
interaction it comes from).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from kgrec.data.schema import Schema, cypher, load_schema
from kgrec.serve.recommend import Recommender

Step = tuple[str, str, str, int, int]
RELATION_WORDS = {
    "co_interacted": "is often chosen by the same shoppers as",
    "co_interacted_by": "is often chosen by the same shoppers as",
    "followed_by": "is often chosen right before",
    "preceded": "is often chosen right after",
    "also_bought": "is often bought together with",
    "also_bought_by": "is often bought together with",
    "also_viewed": "is often viewed together with",
    "also_viewed_by": "is often viewed together with",
    "in_category": "is in the category",
    "category_of": "contains",
    "subcategory_of": "is part of",
    "parent_of": "includes",
    "made_by": "is made by",
    "makes": "makes",
    "has_tag": "is tagged",
    "tag_of": "tags",
    "related": "is related to",
    "related_to": "relates to",
    "interacted_by": "was chosen by",
    "recently_chose": "recently chose",
    "recently_chosen_by": "was recently chosen by",
    "interacts": "chose",
}  # (src type, relation, dst type, src index, dst index)


@dataclass
class Explainer:
    """Rebuilds the trained GNN and its graph from a run folder."""

    rec: Recommender
    model: torch.nn.Module
    x: dict[str, torch.Tensor]
    edges: dict[tuple[str, str, str], torch.Tensor]
    schema: Schema
    _out_adj: dict | None = None  # built once from ``edges``, reused by every path search

    @classmethod
    def load(cls, run_dir: str | Path, rec: Recommender | None = None) -> Explainer:
        """The GNN of ``run_dir`` and its graph; pass its already loaded ``rec`` to avoid reading it twice."""
        rec = rec or Recommender.load(run_dir)
        return cls(rec, rec.run.gnn(), rec.graph["x"], rec.run.edges, load_schema())

    # ------------------------------------------------------------------ scoring with edges removed
    @torch.no_grad()
    def score(self, u: int, p: int, removed: list[Step] = ()) -> float:
        edges = self.edges
        if removed:
            edges = dict(edges)
            drop: dict[tuple, list[tuple[int, int]]] = {}
            for st, rel, dt, a, b in removed:
                spec = self.schema.edge_by_relation(rel)
                rev = spec.reverse if rel == spec.name else spec.name
                drop.setdefault((st, rel, dt), []).append((a, b))
                drop.setdefault((dt, rev, st), []).append((b, a))
            for et, pairs in drop.items():
                ei = edges[et]
                kill = torch.zeros(ei.shape[1], dtype=torch.bool)
                for a, b in pairs:
                    kill |= (ei[0] == a) & (ei[1] == b)
                edges[et] = ei[:, ~kill]
        U, I = self.model.embed(self.x, edges)
        return float(U[u] @ I[p])

    # ------------------------------------------------------------------ path search
    def paths(self, u: int, p: int, max_paths: int = 200) -> list[list[Step]]:
        """All paths user → … → product of 2 or 3 hops over the message-passing graph."""
        out_adj = self._adjacency()
        into_p: dict[tuple[str, int], list[str]] = {}
        for (st, rel, dt), ei in self.edges.items():
            if dt != "product":
                continue
            for a in ei[0][ei[1] == p].tolist():
                into_p.setdefault((st, a), []).append(rel)
        found: list[list[Step]] = []
        first = out_adj.get("user", {}).get(u, [])
        for rel1, t1, x in first:
            if (t1, x) == ("product", p):
                continue
            for rel2 in into_p.get((t1, x), []):
                found.append([("user", rel1, t1, u, x), (t1, rel2, "product", x, p)])
            for rel2, t2, y in out_adj.get(t1, {}).get(x, []):
                if (t2, y) in (("user", u), ("product", p)) or (t2 == t1 and y == x):
                    continue
                for rel3 in into_p.get((t2, y), []):
                    found.append([("user", rel1, t1, u, x), (t1, rel2, t2, x, y), (t2, rel3, "product", y, p)])
            if len(found) >= max_paths * 20:
                break
        return found

    def _adjacency(self) -> dict[str, dict[int, list[tuple[str, str, int]]]]:
        """``{src type: {src index: [(relation, dst type, dst index), ...]}}`` of the full graph."""
        if self._out_adj is None:
            adj: dict[str, dict[int, list[tuple[str, str, int]]]] = {}
            for (st, rel, dt), ei in self.edges.items():
                for a, b in zip(ei[0].tolist(), ei[1].tolist()):
                    adj.setdefault(st, {}).setdefault(a, []).append((rel, dt, b))
            self._out_adj = adj
        return self._out_adj

    def decompose(self, u: int, p: int) -> tuple[float, list[dict]]:
        """The served score of ``(u, p)`` and its additive terms: the GNN's and, for a run served with
        path scores, each relation's ``w_r · z(P_r)`` with the history product that adds most to it."""
        hybrid = self.rec.hybrid
        if hybrid is None:
            score = float(self.rec.score_matrix(torch.tensor([u]))[0, p])
            return score, [{"name": "gnn", "value": score}]
        parts = hybrid.terms(torch.tensor([u]))
        hist, contrib = hybrid.prior.contributions(u, p)
        terms = []
        for name, value in parts.items():
            term = {"name": name, "value": float(value[0, p])}
            if name != "gnn":
                term["weight"] = float(hybrid.weights[name])
                c = contrib[name]
                if c.numel() and float(c.max()) > 0:
                    j = int(hist[int(c.argmax())])
                    term["because"] = {
                        "product_id": self.rec.product_ids[j],
                        "title": self.rec.ckpt["titles"][j],
                        "contribution": float(c.max()),
                        "path_score": float(c.sum()),
                    }
            terms.append(term)
        return float(sum(t["value"] for t in terms)), terms

    def explain(self, user_id: str, product_id: str, top: int = 5, candidates: int = 40) -> dict:
        """The served score of ``(user, product)`` split into its terms, and the ``top`` graph paths by
        model importance (the GNN score's drop when the path's edges are removed)."""
        u = int(self.rec.user_index([user_id])[0])
        p = int(self.rec.product_index([product_id])[0])
        served, terms = self.decompose(u, p)
        base = self.score(u, p)
        paths = self.paths(u, p)
        # a cheap prior keeps the exact (expensive) test to a bounded, diverse candidate set
        paths.sort(key=lambda path: (len(path), [s[1] for s in path]))
        by_pattern: dict[tuple, list] = {}
        for path in paths:
            by_pattern.setdefault(tuple(s[1] for s in path), []).append(path)
        chosen: list[list[Step]] = []
        while len(chosen) < min(candidates, len(paths)):
            for group in by_pattern.values():
                if group and len(chosen) < candidates:
                    chosen.append(group.pop(0))
        ranked = sorted(((base - self.score(u, p, path), path) for path in chosen), key=lambda t: -t[0])
        # the GNN term of a served hybrid is z-scored per user: a drop of d in the GNN score moves it by d/std
        scale = 1.0
        if self.rec.hybrid is not None:
            scale = float(self.rec.hybrid.base(torch.tensor([u])).float().std()) + 1e-9
        described = []
        for imp, path in ranked[:top]:
            row = self.describe(path, imp)
            row["importance_served"] = imp / scale
            described.append(row)
        return {
            "user_id": user_id,
            "product_id": product_id,
            "model": self.rec.served_name,
            "score": served,
            "terms": terms,
            "gnn_score": base,
            "paths_found": len(paths),
            "paths_tested": len(chosen),
            "paths": described,
        }

    # ------------------------------------------------------------------ words and Cypher
    def _id(self, t: str, i: int) -> str:
        return self.rec.ckpt["id_maps"][t][i]

    def _name(self, t: str, i: int) -> str:
        if t == "product":
            title = self.rec.ckpt["titles"][i]
            return f"“{title[:60]}”" if title else self._id(t, i)
        if t == "user":
            return self._id(t, i)
        return self.rec.run.node_name(t, i)

    def describe(self, path: list[Step], importance: float) -> dict:
        nodes = [(path[0][0], path[0][3])] + [(s[2], s[4]) for s in path]
        rels = [s[1] for s in path]
        return {
            "importance": importance,
            "relations": rels,
            "nodes": [{"type": t, "id": self._id(t, i)} for t, i in nodes],
            "sentence": self.sentence(rels, nodes),
            **self.cypher(path),
        }

    def sentence(self, rels: list[str], nodes: list[tuple[str, int]]) -> str:
        n = [self._name(t, i) for t, i in nodes]
        shared = {
            ("in_category", "category_of"): "is in the category {b}, like {p}",
            ("made_by", "makes"): "is made by {b}, who also makes {p}",
            ("has_tag", "tag_of"): "is tagged “{b}”, and so is {p}",
            ("related", "related_to"): "shares {b} with {p}",
            ("interacted_by", "interacts"): "was also chosen by another shopper, who chose {p} too",
        }
        you = f"You {RELATION_WORDS.get(rels[0], 'chose')} {n[1]}, which "  # chose, or recently chose
        if len(rels) == 3 and (rels[1], rels[2]) in shared:
            return you + shared[rels[1], rels[2]].format(b=n[2], p=n[3]) + "."
        hops = [f"{RELATION_WORDS.get(r, 'is linked (' + r + ') to')} {name}" for r, name in zip(rels[1:], n[2:])]
        return you + ", which ".join(hops) + "."

    def cypher(self, path: list[Step]) -> dict:
        parts, params = [], {}
        for k, (t, i) in enumerate([(path[0][0], path[0][3])] + [(s[2], s[4]) for s in path]):
            spec = self.schema.nodes[t]
            params[f"n{k}"] = self._id(t, i)
            parts.append(f"(:{spec.label} {{{spec.key}: $n{k}}})")
        pattern = parts[0]
        for k, (_, rel, _, _, _) in enumerate(path):
            spec = self.schema.edge_by_relation(rel)
            forward = rel == spec.name
            if spec.neo4j_as is not None:  # its pairs are stored as that edge's
                spec = self.schema.edges[spec.neo4j_as]
            elif spec.derived is not None:
                return {"cypher": None, "cypher_note": f"'{rel}' is derived from the training split; not in Neo4j"}
            types = "|".join(spec.neo4j_types())
            pattern += f"-[:{types}]->" if forward else f"<-[:{types}]-"
            pattern += parts[k + 1]
        return {"cypher": cypher("explain_path").format(pattern=pattern), "parameters": params}


def run_cypher(driver, query: str, parameters: dict, database: str = "neo4j") -> list[list[str]]:
    """Run an explanation query; returns the node ids along the path found (empty when none)."""
    schema = load_schema()
    records, _, _ = driver.execute_query(query, parameters, database_=database)
    out = []
    for rec in records:
        ids = []
        for node in rec["p"].nodes:
            spec = schema.node_by_label(next(iter(node.labels)))
            ids.append(node[spec.key])
        out.append(ids)
    return out


def check_in_neo4j(result: dict, uri: str | None = None) -> dict:
    """Run every path's Cypher of an :meth:`Explainer.explain` result in Neo4j and record in
    ``neo4j_match`` whether it returns exactly that path. The server comes from ``uri`` (a flag) or
    the environment, never from the run folder."""
    from kgrec.neo4j.connection import driver, resolve_config

    config = resolve_config(uri or None)
    drv = driver(config)
    try:
        for path in result["paths"]:
            if path.get("cypher"):
                found = run_cypher(drv, path["cypher"], path["parameters"], config.database)
                path["neo4j_match"] = bool(found) and found[0] == [n["id"] for n in path["nodes"]]
    finally:
        drv.close()
    return result
