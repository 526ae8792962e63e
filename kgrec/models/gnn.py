"""Knowledge-graph encoders: R-GCN (basis decomposition) and HGT, plus the dot-product recommender.

Both encoders map every node type to a ``hidden``-dim vector from (a) a per-type linear projection of
its features and (b) a learnable id embedding (``id_embeddings="no-user"`` or ``"none"`` for inductive use), then run
``num_layers`` of message passing over all edge types. The layer outputs are averaged (as LightGCN
does), so shallow and deep signals both reach the decoder. Scores are dot products, so top-K over all
products is one matrix product.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import HGTConv, RGCNConv

NodeType = str
EdgeType = tuple[str, str, str]
# which node types get a learnable id embedding: all; all but users (a user is what they interacted
# with: new users need no retraining); none (fully inductive, features only)
ID_EMBEDDINGS = ("all", "no-user", "none")


class NodeInputs(nn.Module):
    """Per-type input layer: ``x_dict[t] [N_t, F_t]`` → ``[N_t, hidden]``."""

    def __init__(self, in_dims: dict[NodeType, int], num_nodes: dict[NodeType, int], hidden: int,
                 id_embeddings: str = "all"):
        super().__init__()
        if id_embeddings not in ID_EMBEDDINGS:
            raise ValueError(f"id_embeddings must be one of {ID_EMBEDDINGS}")
        with_ids = {"all": set(num_nodes), "no-user": set(num_nodes) - {"user"}, "none": set()}[id_embeddings]
        self.proj = nn.ModuleDict({t: nn.Linear(f, hidden) for t, f in in_dims.items() if f > 0})
        self.emb = nn.ModuleDict({t: nn.Embedding(n, hidden) for t, n in num_nodes.items() if t in with_ids})
        self.type_vec = nn.ParameterDict({t: nn.Parameter(torch.zeros(hidden)) for t in num_nodes
                                          if t not in self.proj and t not in self.emb})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.num_nodes = dict(num_nodes)
        self.hidden = hidden

    def forward(self, x_dict: dict[NodeType, Tensor], n_id_dict: dict[NodeType, Tensor] | None = None
                ) -> dict[NodeType, Tensor]:
        """Without ``n_id_dict`` the rows of ``x_dict[t]`` are the whole graph's nodes in index order; rows
        beyond the trained node count are new nodes (cold start): they get a zero id embedding, so they
        are represented by their features and their edges alone. With ``n_id_dict[t] [n_t]`` (a sampled
        subgraph), row r of ``x_dict[t]`` is global node ``n_id_dict[t][r]``."""
        out = {}
        for t, n in self.num_nodes.items():
            h = None
            if t in x_dict:
                n = x_dict[t].shape[0]
            if t in self.proj:
                h = self.proj[t](x_dict[t])
            if t in self.emb:
                if n_id_dict is not None:
                    w = self.emb[t](n_id_dict[t])
                else:
                    w = self.emb[t].weight
                    if n > w.shape[0]:
                        w = torch.cat([w, w.new_zeros(n - w.shape[0], w.shape[1])])
                h = w if h is None else h + w
            if h is None:
                h = self.type_vec[t].expand(n, self.hidden)
            out[t] = h
        return out


class RGCNEncoder(nn.Module):
    """Relational GCN over the whole heterogeneous graph (homogenised with an edge-type vector)."""

    def __init__(self, node_types: list[NodeType], edge_types: list[EdgeType], in_dims: dict[NodeType, int],
                 num_nodes: dict[NodeType, int], hidden: int = 64, num_layers: int = 2, num_bases: int = 8,
                 dropout: float = 0.1, id_embeddings: str = "all", linear: bool = False):
        super().__init__()
        self.linear = linear
        self.node_types = list(node_types)
        self.edge_types = list(edge_types)
        self.inputs = NodeInputs(in_dims, num_nodes, hidden, id_embeddings)
        n_rel = len(self.edge_types)
        self.convs = nn.ModuleList(
            RGCNConv(hidden, hidden, n_rel, num_bases=min(num_bases, n_rel), aggr="mean") for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def _homogenise(self, edge_index_dict: dict[EdgeType, Tensor], sizes: dict[NodeType, int], device):
        offsets, total = {}, 0
        for t in self.node_types:
            offsets[t] = total
            total += sizes[t]
        eis, ets = [], []
        for r, et in enumerate(self.edge_types):
            ei = edge_index_dict.get(et)
            if ei is None or ei.numel() == 0:
                continue
            shift = torch.tensor([[offsets[et[0]]], [offsets[et[2]]]], device=device)
            eis.append(ei + shift)
            ets.append(torch.full((ei.shape[1],), r, dtype=torch.long, device=device))
        return offsets, torch.cat(eis, 1), torch.cat(ets)

    def forward(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                n_id_dict: dict[NodeType, Tensor] | None = None) -> dict[NodeType, Tensor]:
        """Returns ``{node_type: [N_t, hidden]}`` (``n_id_dict``: see :class:`NodeInputs`)."""
        h_dict = self.inputs(x_dict, n_id_dict)
        sizes = {t: h.shape[0] for t, h in h_dict.items()}
        device = next(iter(h_dict.values())).device
        offsets, edge_index, edge_type = self._homogenise(edge_index_dict, sizes, device)
        h = torch.cat([h_dict[t] for t in self.node_types])  # [N, hidden]
        layers = [h]
        for conv, norm in zip(self.convs, self.norms):
            if self.linear:  # LightGCN-style: no non-linearity, the layer output is the next input
                h = self.dropout(conv(h, edge_index, edge_type))
            else:
                h = h + self.dropout(torch.relu(norm(conv(h, edge_index, edge_type))))
            layers.append(h)
        h = torch.stack(layers).mean(0)
        return {t: h[offsets[t]:offsets[t] + sizes[t]] for t in self.node_types}


class HGTEncoder(nn.Module):
    """Heterogeneous Graph Transformer: type-specific attention over every edge type."""

    def __init__(self, node_types: list[NodeType], edge_types: list[EdgeType], in_dims: dict[NodeType, int],
                 num_nodes: dict[NodeType, int], hidden: int = 64, num_layers: int = 2, heads: int = 2,
                 dropout: float = 0.1, id_embeddings: str = "all"):
        super().__init__()
        self.node_types = list(node_types)
        self.inputs = NodeInputs(in_dims, num_nodes, hidden, id_embeddings)
        metadata = (list(node_types), list(edge_types))
        self.convs = nn.ModuleList(HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.ModuleDict({t: nn.LayerNorm(hidden) for t in node_types})
                                   for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                n_id_dict: dict[NodeType, Tensor] | None = None) -> dict[NodeType, Tensor]:
        """Returns ``{node_type: [N_t, hidden]}`` (``n_id_dict``: see :class:`NodeInputs`)."""
        h = self.inputs(x_dict, n_id_dict)
        layers = [h]
        for conv, norms in zip(self.convs, self.norms):
            out = conv(h, edge_index_dict)
            h = {t: h[t] + self.dropout(torch.relu(norms[t](out[t]))) if out.get(t) is not None else h[t]
                 for t in self.node_types}
            layers.append(h)
        return {t: torch.stack([layer[t] for layer in layers]).mean(0) for t in self.node_types}


class GNNRecommender(nn.Module):
    """An encoder plus a dot-product decoder with a learned product bias for the target edge.

    ``score(u, i) = <h_u, h_i> + b_i``. The bias is folded into the vectors (``[h_u, 1]`` and
    ``[h_i, b_i]``), so top-K over all products stays one matrix product.
    """

    def __init__(self, encoder: nn.Module, num_items: int, user_type: str = "user", item_type: str = "product"):
        super().__init__()
        self.encoder = encoder
        self.item_bias = nn.Parameter(torch.zeros(num_items, 1))
        self.user_type = user_type
        self.item_type = item_type

    def embed(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor],
              n_id_dict: dict[NodeType, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Returns user vectors ``[U, d + 1]`` and product vectors ``[I, d + 1]``: of the whole graph, or
        of a sampled subgraph's nodes when ``n_id_dict`` maps its rows to global ids."""
        h = self.encoder(x_dict, edge_index_dict, n_id_dict)
        users, items = h[self.user_type], h[self.item_type]
        bias = self.item_bias.to(items.dtype)
        if n_id_dict is not None:
            bias = bias[n_id_dict[self.item_type]]
        elif items.shape[0] > bias.shape[0]:  # new products (cold start) get the mean bias
            bias = torch.cat([bias, bias.mean().expand(items.shape[0] - bias.shape[0], 1)])
        return (torch.cat([users, torch.ones_like(users[:, :1])], 1), torch.cat([items, bias], 1))

    @staticmethod
    def decode(user_emb: Tensor, item_emb: Tensor) -> Tensor:
        """``[B, d] x [B, d]`` → ``[B]`` scores (pairwise), or ``[B, d] x [I, d]`` via matmul elsewhere."""
        return (user_emb * item_emb).sum(-1)
