"""Knowledge-graph encoders, R-GCN and HGT, and the recommender that scores with them.

Both encoders start from the same per-type inputs (:class:`NodeInputs`): a two-layer MLP over the
node's features (for products, the frozen language-model embedding of their text plus review and
catalog statistics, as AlphaRec does) plus a learnable id embedding. They then run ``num_layers``
rounds of message passing over every relation of the knowledge graph and average the layer outputs
(as LightGCN does), so shallow and deep signals both reach the decoder.

- :class:`RGCNEncoder` is a relational GCN whose relation weights are scalars (``W_r = a_r·I``) and
  whose messages are normalised per relation the way LightGCN normalises its one relation,
  ``1/sqrt(deg_out_r(src)·deg_in_r(dst))``. Without the per-layer matrices and non-linearities of the
  original R-GCN it has few parameters to overfit sparse shop data; each layer is one sparse product
  per relation.
- :class:`HGTEncoder` uses PyG's ``HGTConv`` (type-specific attention) over the same inputs.

:class:`GNNRecommender` scores ``cos(h_u, h_i) + b_i`` with a learned product bias (the cosine alone
cannot say that one product is chosen more than another); training divides the score by a temperature
(softmax over sampled or all products). The bias is folded into the vectors, so top-K over all
products stays one matrix product.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.nn import HGTConv

NodeType = str
EdgeType = tuple[str, str, str]
# which node types get a learnable id embedding: all; all but users (a user is what they interacted
# with: new users need no retraining); none (fully inductive, features only)
ID_EMBEDDINGS = ("all", "no-user", "none")


class _RelationalSum(torch.autograd.Function):
    """One R-GCN layer's messages: ``out[t] = Σ_{r: dst(r) = t} w_r · A_r @ h[src(r)]``.

    ``rels``: ``(src index, dst index, A_r [N_dst, N_src] CSR, A_rᵀ CSR)`` per relation, indices into
    ``types`` (the node types, in the order of ``hs``); ``weight [R]``; ``hs``: ``[N_t, d]`` per type.
    Returns one ``[N_t, d]`` float32 tensor per type (zeros where no relation arrives).

    Autograd through the per-relation products would keep every product ``A_r @ h`` (``[N_dst, d]``,
    one per relation and layer) for ``w_r``'s gradient. Here the backward gets it from what it computes
    anyway: with ``g_r = A_rᵀ @ ∂L/∂out[dst]`` (the messages' gradient to the sources),
    ``∂L/∂h[src] += w_r · g_r`` and ``∂L/∂w_r = Σ g_r ⊙ h[src]``; only the layer inputs are kept. The
    products run in ``A``'s dtype outside autocast (cuSPARSE multiplies like dtypes only, and CPU sparse
    kernels have no bf16); the gradients return in the inputs' dtypes.
    """

    @staticmethod
    def forward(ctx, rels: list, weight: Tensor, *hs: Tensor) -> tuple[Tensor, ...]:
        dtype = rels[0][2].dtype
        out: list[Tensor | None] = [None] * len(hs)
        with torch.autocast(weight.device.type, enabled=False):
            w = weight.detach().tolist()
            for r, (s, d, a, _) in enumerate(rels):
                h = hs[s].to(dtype)
                if dtype != torch.float32:  # a product in A's dtype, added up in float32
                    msg = _spmm(a, h).float()  # a fresh [N_dst, d]
                    out[d] = msg.mul_(w[r]) if out[d] is None else out[d].add_(msg, alpha=w[r])
                elif out[d] is None:
                    out[d] = _spmm(a, h, alpha=w[r])
                else:  # out += w_r · A_r h in the product itself: the same bits as adding a fresh product
                    torch.addmm(out[d], a, h, alpha=w[r], out=out[d])
        out = [torch.zeros(h.shape, dtype=torch.float32, device=h.device) if o is None else o
               for o, h in zip(out, hs)]
        ctx.rels = rels
        ctx.save_for_backward(weight, *hs)
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        weight, *hs = ctx.saved_tensors
        rels = ctx.rels
        dtype = rels[0][3].dtype
        grad_h: list[Tensor | None] = [None] * len(hs)
        grad_w = torch.zeros_like(weight, dtype=torch.float32)
        w = weight.detach().tolist()
        with torch.autocast(weight.device.type, enabled=False):
            for r, (s, d, _, a_t) in enumerate(rels):
                if grads[d] is None:
                    continue
                g = _spmm(a_t, grads[d].to(dtype)).float()  # [N_src, d]
                grad_w[r] = torch.dot(g.view(-1), hs[s].float().reshape(-1))
                grad_h[s] = g.mul_(w[r]) if grad_h[s] is None else grad_h[s].add_(g, alpha=w[r])
        grad_h = [None if g is None else g.to(h.dtype) for g, h in zip(grad_h, hs)]
        return (None, grad_w.to(weight.dtype), *grad_h)


def _spmm(a: Tensor, h: Tensor, alpha: float = 1.0) -> Tensor:
    """``alpha · a @ h`` for a sparse ``a [N, M]`` and a dense ``h [M, d]``, into an uninitialised output:
    the same values as ``a @ h``, which zero-fills its result first (on CPU about 20 % slower at
    LightGCN's 22k × 22k adjacency and d = 64)."""
    out = torch.empty(a.shape[0], h.shape[1], dtype=h.dtype, device=h.device)
    return torch.addmm(out, a, h, beta=0, alpha=alpha, out=out)


def propagate(a: Tensor, a_t: Tensor, h: Tensor) -> Tensor:
    """``a @ h`` for a square CSR ``a [N, N]`` whose transpose ``a_t`` is at hand (``a`` itself when it is
    symmetric), ``h [N, d]`` → ``[N, d]`` float32. Autograd through ``torch.sparse.mm`` would transpose
    ``a`` (a sort of its entries) in every backward; this one multiplies by ``a_t`` (one relation of
    :class:`_RelationalSum`, weight 1)."""
    return _RelationalSum.apply([(0, 0, a, a_t)], torch.ones(1, device=h.device), h)[0]


def normalised_adjacency(edge_index: Tensor, n_src: int, n_dst: int, mean: bool = False) -> tuple[Tensor, Tensor]:
    """``edge_index [2, E]`` (src, dst) → CSR ``A [n_dst, n_src]`` with entries
    ``1/sqrt(deg_out(src)·deg_in(dst))`` (duplicate edges add up), and its transpose ``[n_src, n_dst]``.
    ``mean``: entries ``1/deg_in(dst)`` instead, so ``A @ x`` is each destination's mean of its sources."""
    src, dst = edge_index[0], edge_index[1]
    ones = torch.ones(src.numel(), device=src.device)
    deg_in = torch.zeros(n_dst, device=src.device).index_add_(0, dst, ones)
    if mean:
        val = deg_in[dst].clamp(min=1).reciprocal()
    else:
        deg_out = torch.zeros(n_src, device=src.device).index_add_(0, src, ones)
        val = deg_out[src].clamp(min=1).rsqrt() * deg_in[dst].clamp(min=1).rsqrt()
    a = torch.sparse_coo_tensor(torch.stack([dst, src]), val, (n_dst, n_src), check_invariants=False).coalesce()
    return a.to_sparse_csr(), a.t().coalesce().to_sparse_csr()


class AdjacencyCache:
    """Normalised adjacencies (:func:`normalised_adjacency`) kept per key and rebuilt only when their
    ``edge_index`` changes: another tensor, the same one modified in place, or other node counts.

    An entry holds the ``edge_index`` tensor itself, so its memory cannot be reused by another
    ``edge_index`` that an address-based key would then mistake for it."""

    def __init__(self) -> None:
        self._entries: dict[object, tuple] = {}

    def get(self, key: object, edge_index: Tensor, n_src: int, n_dst: int, mean: bool = False,
            reverse: bool = False) -> tuple[Tensor, Tensor]:
        """``(A [n_dst, n_src], Aᵀ)`` of ``edge_index [2, E]`` (src, dst), built on first use; ``reverse``:
        of the reversed edges instead (messages dst → src, ``A [n_src, n_dst]``)."""
        shape = (n_src, n_dst, mean, reverse)
        cached = self._entries.get(key)
        if cached is None or cached[0] is not edge_index or cached[1] != edge_index._version or cached[2] != shape:
            built = (normalised_adjacency(edge_index.flip(0), n_dst, n_src, mean) if reverse
                     else normalised_adjacency(edge_index, n_src, n_dst, mean))
            cached = (edge_index, edge_index._version, shape, *built)
            self._entries[key] = cached
        return cached[3], cached[4]


class NodeInputs(nn.Module):
    """Per-type input layer: ``x_dict[t] [N_t, F_t]`` → ``[N_t, hidden]`` (MLP of the features + id embedding)."""

    def __init__(self, in_dims: dict[NodeType, int], num_nodes: dict[NodeType, int], hidden: int,
                 id_embeddings: str = "all", dropout: float = 0.0):
        super().__init__()
        if id_embeddings not in ID_EMBEDDINGS:
            raise ValueError(f"id_embeddings must be one of {ID_EMBEDDINGS}")
        with_ids = {"all": set(num_nodes), "no-user": set(num_nodes) - {"user"}, "none": set()}[id_embeddings]
        self.proj = nn.ModuleDict({t: nn.Sequential(nn.Linear(f, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden))
                                   for t, f in in_dims.items() if f > 0})
        self.emb = nn.ModuleDict({t: nn.Embedding(n, hidden) for t, n in num_nodes.items() if t in with_ids})
        self.type_vec = nn.ParameterDict({t: nn.Parameter(torch.zeros(hidden)) for t in num_nodes
                                          if t not in self.proj and t not in self.emb})
        for e in self.emb.values():
            nn.init.normal_(e.weight, std=0.1)
        self.dropout = nn.Dropout(dropout)
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
                h = self.proj[t](self.dropout(x_dict[t]))
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
    """Relational GCN with scalar relation weights and per-relation symmetric normalisation.

    Layer ``l+1`` of node ``v``: ``h_v = Σ_r a_r Σ_{u ∈ N_r(v)} h_u / sqrt(deg_out_r(u)·deg_in_r(v))``,
    ``a_r = exp(θ_r)`` learned (θ starts at 0). The output is the mean of the layers ``0..L``.
    """

    def __init__(self, node_types: list[NodeType], edge_types: list[EdgeType], in_dims: dict[NodeType, int],
                 num_nodes: dict[NodeType, int], hidden: int = 64, num_layers: int = 2, dropout: float = 0.0,
                 id_embeddings: str = "all"):
        super().__init__()
        self.node_types = list(node_types)
        self.edge_types = list(edge_types)
        self.num_layers = num_layers
        self.inputs = NodeInputs(in_dims, num_nodes, hidden, id_embeddings, dropout)
        self.relation_logit = nn.Parameter(torch.zeros(len(self.edge_types)))
        self.adjacency = AdjacencyCache()  # per edge type

    def forward(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                n_id_dict: dict[NodeType, Tensor] | None = None) -> dict[NodeType, Tensor]:
        """Returns ``{node_type: [N_t, hidden]}`` (``n_id_dict``: see :class:`NodeInputs`)."""
        h = self.inputs(x_dict, n_id_dict)
        sizes = {t: v.shape[0] for t, v in h.items()}
        types = list(h)
        present = [(r, et) for r, et in enumerate(self.edge_types)
                   if edge_index_dict.get(et) is not None and edge_index_dict[et].numel() > 0]
        rels = [(types.index(et[0]), types.index(et[2]),
                 *self.adjacency.get(et, edge_index_dict[et], sizes[et[0]], sizes[et[2]])) for _, et in present]
        total = {t: v.float() for t, v in h.items()}
        if rels:  # without any edge every layer's messages are zero
            weight = self.relation_logit.exp()[[r for r, _ in present]]
            for _ in range(self.num_layers):
                h = dict(zip(types, _RelationalSum.apply(rels, weight, *(h[t] for t in types))))
                total = {t: total[t] + h[t] for t in total}
        return {t: v / (self.num_layers + 1) for t, v in total.items()}


class HGTEncoder(nn.Module):
    """Heterogeneous Graph Transformer: type-specific attention over every edge type."""

    def __init__(self, node_types: list[NodeType], edge_types: list[EdgeType], in_dims: dict[NodeType, int],
                 num_nodes: dict[NodeType, int], hidden: int = 64, num_layers: int = 2, heads: int = 2,
                 dropout: float = 0.0, id_embeddings: str = "all"):
        super().__init__()
        self.node_types = list(node_types)
        self.inputs = NodeInputs(in_dims, num_nodes, hidden, id_embeddings, dropout)
        metadata = (list(node_types), list(edge_types))
        self.convs = nn.ModuleList(HGTConv(hidden, hidden, metadata, heads=heads) for _ in range(num_layers))
        self.norms = nn.ModuleList(nn.ModuleDict({t: nn.LayerNorm(hidden) for t in node_types})
                                   for _ in range(num_layers))

    def forward(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor],
                n_id_dict: dict[NodeType, Tensor] | None = None) -> dict[NodeType, Tensor]:
        """Returns ``{node_type: [N_t, hidden]}`` (``n_id_dict``: see :class:`NodeInputs`)."""
        h = self.inputs(x_dict, n_id_dict)
        layers = [h]
        for conv, norms in zip(self.convs, self.norms):
            out = conv(h, edge_index_dict)
            h = {t: h[t] + torch.relu(norms[t](out[t])) if out.get(t) is not None else h[t] for t in self.node_types}
            layers.append(h)
        return {t: torch.stack([layer[t] for layer in layers]).mean(0) for t in self.node_types}


class GNNRecommender(nn.Module):
    """An encoder plus a cosine decoder with a product bias: ``score(u, i) = cos(h_u, h_i) + b_i``.

    The bias is folded into the vectors (``[ĥ_u, 1]`` and ``[ĥ_i, b_i]``, ``ĥ`` unit length), so a score
    is one dot product and top-K over all products one matrix product.
    """

    def __init__(self, encoder: nn.Module, num_items: int, user_type: str = "user", item_type: str = "product",
                 history_tower: float = 0.0, history_edge: EdgeType | None = None):
        super().__init__()
        self.encoder = encoder
        self.item_bias = nn.Parameter(torch.zeros(num_items, 1))
        self.user_type = user_type
        self.item_type = item_type
        # the recent-history tower (off at 0): h_u + w · mean of the encoder's vectors of the products that
        # history_edge (user → product: recently_chose) links to u, w learned from this starting value
        if history_tower and (history_edge is None or history_edge[0] != user_type or history_edge[2] != item_type):
            raise ValueError(f"the history tower needs a {user_type} → {item_type} relation, not {history_edge!r}")
        self.history_edge = history_edge
        self.history_weight = nn.Parameter(torch.tensor(float(history_tower))) if history_tower else None
        self.history_adjacency = AdjacencyCache()

    def embed(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor],
              n_id_dict: dict[NodeType, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """User vectors ``[U, d + 1]`` and product vectors ``[I, d + 1]``: of the whole graph, or of a
        sampled subgraph's nodes when ``n_id_dict`` maps its rows to global ids."""
        h = self.encoder(x_dict, edge_index_dict, n_id_dict)
        users, items = h.pop(self.user_type), h.pop(self.item_type)
        del h  # the encoder's outputs are not kept: _UnitWithColumn saves what its backward needs
        if self.history_weight is not None:
            users = users + self._recent_mean(users, items, edge_index_dict)
        bias = self.item_bias
        if n_id_dict is not None:
            bias = bias[n_id_dict[self.item_type]]
        elif items.shape[0] > bias.shape[0]:  # new products (cold start) get the mean bias
            bias = torch.cat([bias, bias.mean().expand(items.shape[0] - bias.shape[0], 1)])
        return (_UnitWithColumn.apply(users, torch.ones((), dtype=users.dtype, device=users.device)),
                _UnitWithColumn.apply(items, bias))

    def _recent_mean(self, users: Tensor, items: Tensor, edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        """``[U, d]``: ``history_weight`` times each user's mean of the ``items [I, d]`` rows that
        ``history_edge`` links them to (zeros for a user without such edges, or without the relation in the
        graph). One CSR product through :class:`_RelationalSum`, as the encoder's messages: deterministic
        on CPU, where autograd's backward of a row gather accumulates in a varying order. The adjacency
        is built once per graph, as the encoder's are."""
        ei = edge_index_dict.get(self.history_edge)
        if ei is None or ei.numel() == 0:
            return torch.zeros_like(users)
        rels = [(1, 0, *self.history_adjacency.get(self.history_edge, ei, users.shape[0], items.shape[0], mean=True,
                                                   reverse=True))]  # products → users
        return _RelationalSum.apply(rels, self.history_weight.reshape(1), users, items)[0].to(users.dtype)


class _UnitWithColumn(torch.autograd.Function):
    """``[x / max(‖x‖, ε), c]`` for ``x [N, d]`` and a column ``c`` (``[N, 1]``, or a scalar for a
    constant column) → ``[N, d + 1]`` float32: what ``cat([normalize(x), c], 1)`` gives for a float32
    ``x``, with the same forward arithmetic (a lower-precision ``x`` is normalised in float32).

    Autograd through ``normalize`` and ``cat`` keeps ``x`` for the backward and allocates several
    ``[N, d]`` temporaries there, on top of the separate ``cat`` output; at a million interactions
    (97,500 users, d = 256) each such copy is 0.1 GiB of the training step's peak. This function keeps
    only its output and the norms ``[N, 1]``, and its backward allocates one ``[N, d]`` tensor:
    ``∂L/∂x = (g − x̂ (x̂·g)) / max(‖x‖, ε)`` (without the projection where ``‖x‖ < ε``, where
    ``normalize`` divides by the constant ε), ``∂L/∂c = `` the last column of ``g``."""

    EPS = 1e-12  # torch.nn.functional.normalize's default

    @staticmethod
    def forward(ctx, x: Tensor, column: Tensor) -> Tensor:
        x_dtype = x.dtype
        with torch.autocast(x.device.type, enabled=False):
            x = x.float()
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(_UnitWithColumn.EPS)  # [N, 1]
            out = torch.empty(x.shape[0], x.shape[1] + 1, dtype=torch.float32, device=x.device)
            torch.div(x, norm, out=out[:, :-1])
            out[:, -1:] = column
        ctx.x_dtype = x_dtype
        ctx.column_dtype = column.dtype
        ctx.save_for_backward(out, norm)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        out, norm = ctx.saved_tensors
        unit, g = out[:, :-1], grad[:, :-1]
        along = torch.einsum("nd,nd->n", unit, g).unsqueeze(-1)  # [N, 1], without an [N, d] product
        along.masked_fill_(norm <= _UnitWithColumn.EPS, 0.0)
        grad_x = torch.addcmul(g, unit, along, value=-1.0).div_(norm).to(ctx.x_dtype)  # [N, d]
        grad_col = None
        if ctx.needs_input_grad[1]:
            grad_col = grad[:, -1:].to(ctx.column_dtype)
        return grad_x, grad_col
