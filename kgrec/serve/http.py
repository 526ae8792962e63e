"""``kgrec serve RUN_DIR``: an HTTP API over a trained run (FastAPI + uvicorn).

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

- ``GET  /health``: scores one user with the loaded model; 503 when that fails;
- ``POST /recommend``: top-k for a known user (with reasons) or for a new user given product ids;
- ``POST /score``: scores of users × products;
- ``POST /explain``: the served score's terms and model-ranked knowledge-graph paths with Cypher (GNN runs);
- ``POST /search``: semantic search blended with the user's preferences;
- ``POST /events``: a shopper's new interaction, logged durably and applied at once (kgrec.serve.events);
- ``GET  /trending``: time-decayed popular products, by category;
- ``POST /admin/reload``: read the run folder again and switch to it atomically (loopback clients only).

The server holds one immutable :class:`Snapshot` of the run (checkpoint, graph and catalog, all read at
start): requests in flight keep the snapshot they started with, and a reload swaps in a complete new
one, so a refresh of the run folder can never mix two versions. Explanations (dozens of graph forward
passes each) run at most ``MAX_EXPLAIN`` at a time; further ones get 503 at once instead of queueing,
and the rest of the API never waits for them.

Every request body is validated (pydantic); ``k`` is at most ``MAX_K``, id lists at most ``MAX_IDS``
long and bodies at most ``MAX_BODY_BYTES``, counted while they stream in (also chunked ones). Unknown
ids give 404, bad input 422 or 400, and an unexpected failure a plain 500 message: no stack trace ever
leaves the server (it is logged).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from kgrec.config import GNN_MODELS, SEARCH_ALPHA
from kgrec.errors import KgrecError, UnknownIdError
from kgrec.serve.recommend import Recommender

MAX_K = 100
MAX_IDS = 1000
MAX_BODY_BYTES = 64 * 1024
MAX_EXPLAIN = 2  # explanations computed at once; more get 503
log = logging.getLogger("kgrec.serve")


class RecommendRequest(BaseModel):
    user_id: str | None = Field(None, min_length=1, max_length=200, description="a known user")
    product_ids: list[str] | None = Field(None, min_length=1, max_length=MAX_IDS,
                                          description="a new user: the products they picked (GNN runs)")
    k: int = Field(10, ge=1, le=MAX_K)
    exclude_seen: bool = True

    @model_validator(mode="after")
    def one_of(self):
        if (self.user_id is None) == (self.product_ids is None):
            raise ValueError("give exactly one of user_id or product_ids")
        return self


class Item(BaseModel):
    rank: int
    product_id: str
    title: str
    score: float
    reason: str


class RecommendResponse(BaseModel):
    user_id: str | None
    model: str
    recommendations: list[Item]


class ScoreRequest(BaseModel):
    user_ids: list[str] = Field(min_length=1, max_length=MAX_IDS)
    product_ids: list[str] = Field(min_length=1, max_length=MAX_IDS)


class ScoreResponse(BaseModel):
    user_ids: list[str]
    product_ids: list[str]
    scores: list[list[float]] = Field(description="[len(user_ids)][len(product_ids)]")


class ExplainRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=200)
    product_id: str = Field(min_length=1, max_length=200)
    top: int = Field(5, ge=1, le=20)


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=1000)
    user_id: str | None = Field(None, min_length=1, max_length=200)
    k: int = Field(10, ge=1, le=MAX_K)
    alpha: float = Field(SEARCH_ALPHA, ge=0.0, le=1.0)


class SearchHit(BaseModel):
    rank: int
    product_id: str
    title: str
    score: float


class EventRequest(BaseModel):
    user_id: str = Field(min_length=1, max_length=200)
    product_id: str = Field(min_length=1, max_length=200)
    kind: str = "purchase"
    timestamp: float | None = None
    rating: float | None = Field(None, ge=0, le=5)


class SearchResponse(BaseModel):
    query: str
    user_id: str | None
    alpha: float
    results: list[SearchHit]


@dataclass
class Snapshot:
    """One loaded version of the run; its heavy parts (explainer, cold start, search) load on first use."""

    rec: Recommender
    _parts: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # read the run's catalog copy now, with the checkpoint and graph: the parts built later come from
        # memory only, so a run folder replaced on disk (refresh --in-place) never mixes into this snapshot
        self.rec.run.catalog()
        _ = self.rec.run.ann  # a large catalog's top-K index, loaded (or built) before the first request
        from kgrec.serve.events import LiveHistory

        self.live = LiveHistory(self.rec, self.rec.run_dir)  # replays the event log into the histories

    def part(self, name: str):
        with self._lock:  # held only while a part is built, once per snapshot
            if name not in self._parts:
                if name == "explainer":
                    from kgrec.serve.explain import Explainer

                    self._parts[name] = Explainer.load(self.rec.run_dir, self.rec)
                elif name == "trending":
                    from kgrec.serve.trending import Trending

                    self._parts[name] = Trending(self.rec.run)
                elif name == "coldstart":
                    from kgrec.serve.coldstart import ColdStart

                    self._parts[name] = ColdStart.load(self.rec.run_dir, self.rec)
                else:
                    from kgrec.serve.search import Searcher, load_run_catalog

                    self._parts[name] = Searcher(self.rec, load_run_catalog(self.rec))
            return self._parts[name]


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, counted as it streams in."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        size = dict(scope.get("headers") or []).get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.limit):
            return await _send_json(send, 413, {"detail": f"request body over {self.limit} bytes"})
        received, refused = 0, False

        async def limited():
            # over the limit: answer 413 now and tell the app the client has gone, so it stops reading
            # (an exception here would be turned into a 400 by FastAPI's body parsing)
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not refused:
                        refused = True
                        await _send_json(send, 413, {"detail": f"request body over {self.limit} bytes"})
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message):
            if not refused:  # the app's own answer to a refused request is dropped
                await send(message)

        await self.app(scope, limited, unless_refused)


async def _send_json(send, status: int, body: dict) -> None:
    import json

    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def create_app(run_dir: str | Path) -> FastAPI:
    """The API for one run folder (read completely now; ``POST /admin/reload`` reads it again)."""
    state = {"snap": Snapshot(Recommender.load(run_dir))}
    reload_lock = threading.Lock()
    explain_slots = threading.BoundedSemaphore(MAX_EXPLAIN)

    app = FastAPI(title="kgrec", version="1", description="Recommendations, explanations and search over a "
                  "trained kgrec run. Ids are the catalog's own (strings).")
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(KgrecError)
    async def bad_input(request: Request, exc: KgrecError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get("/health")
    async def health() -> JSONResponse:
        # async: answered on the event loop, so it never waits behind busy worker threads
        rec = state["snap"].rec
        try:
            import torch

            scores = rec.score_matrix(torch.tensor([0]))
            ok = bool(torch.isfinite(scores).all()) and scores.shape[1] == len(rec.product_ids)
        except Exception:  # the check itself must answer, whatever broke
            log.exception("health check failed")
            ok = False
        body = {"status": "ok" if ok else "failing", "model": rec.served_name, "users": len(rec.user_ids),
                "products": len(rec.product_ids), "run": str(rec.run_dir)}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(req: RecommendRequest) -> dict:
        snap = state["snap"]
        if req.product_ids is not None:
            rows = snap.part("coldstart").recommend_new_user(req.product_ids, k=req.k)
            for r in rows:
                r["reason"] = "for a new shopper, from the products they picked"
        elif req.user_id not in snap.rec.run.index("user") and req.user_id in snap.live.new_users:
            rows = snap.live.recommend_new_user(req.user_id, req.k, snap.part("coldstart"))
        else:
            rows = snap.rec.recommend(req.user_id, k=req.k, exclude_seen=req.exclude_seen)
        return {"user_id": req.user_id, "model": snap.rec.served_name, "recommendations": rows}

    @app.post("/events")
    def events(req: EventRequest) -> dict:
        return state["snap"].live.add(req.model_dump())

    @app.post("/score", response_model=ScoreResponse)
    def score(req: ScoreRequest) -> dict:
        rec = state["snap"].rec
        return {"user_ids": req.user_ids, "product_ids": req.product_ids,
                "scores": rec.score(req.user_ids, req.product_ids).tolist()}

    @app.post("/explain")
    def explain(req: ExplainRequest) -> dict:
        snap = state["snap"]
        if snap.rec.model_name not in GNN_MODELS:
            raise HTTPException(400, f"explanations need a GNN run; this run's model is {snap.rec.model_name}")
        if not explain_slots.acquire(blocking=False):
            raise HTTPException(503, f"{MAX_EXPLAIN} explanations are being computed; try again shortly",
                                headers={"Retry-After": "1"})
        try:
            return snap.part("explainer").explain(req.user_id, req.product_id, top=req.top)
        finally:
            explain_slots.release()

    @app.post("/search", response_model=SearchResponse)
    def search(req: SearchRequest) -> dict:
        rows = state["snap"].part("searcher").search(req.query, req.user_id, k=req.k, alpha=req.alpha)
        return {"query": req.query, "user_id": req.user_id, "alpha": req.alpha, "results": rows}

    @app.get("/trending")
    def trending(category: str | None = None, k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        trend = state["snap"].part("trending")
        return {"category": category, "half_life_days": trend.half_life, "products": trend.top(k, category)}

    @app.post("/admin/reload")
    def reload(request: Request) -> dict:
        if request.client is None or request.client.host not in ("127.0.0.1", "::1", "localhost", "testclient"):
            raise HTTPException(403, "reload is accepted from loopback clients only")
        with reload_lock:  # one reload at a time; requests keep being served from the old snapshot
            new = Snapshot(Recommender.load(run_dir))
            state["snap"] = new
        return {"status": "reloaded", "model": new.rec.served_name, "users": len(new.rec.user_ids),
                "products": len(new.rec.product_ids)}

    return app


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(create_app(run_dir), host=host, port=port, log_level=log_level)
