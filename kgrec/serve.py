"""``kgrec serve RUN_DIR``: an HTTP API over a trained run (FastAPI + uvicorn).

Endpoints (OpenAPI schema at ``/openapi.json``, interactive docs at ``/docs``):

- ``GET  /health``: the run's model and sizes;
- ``POST /recommend``: top-k for a known user (with reasons) or for a new user given product ids;
- ``POST /score``: scores of users × products;
- ``POST /explain``: model-ranked knowledge-graph paths with their Cypher (GNN runs);
- ``POST /search``: semantic search blended with the user's preferences.

Every request body is validated (pydantic); ``k`` is at most ``MAX_K``, id lists at most ``MAX_IDS``
long and bodies at most ``MAX_BODY_BYTES``. Unknown ids give 404, bad input 422 or 400, and an
unexpected failure a plain 500 message: no stack trace ever leaves the server (it is logged).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator

from .models import GNN_MODELS
from .recommend import Recommender

MAX_K = 100
MAX_IDS = 1000
MAX_BODY_BYTES = 64 * 1024
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
    alpha: float = Field(0.5, ge=0.0, le=1.0)


class SearchHit(BaseModel):
    rank: int
    product_id: str
    title: str
    score: float


class SearchResponse(BaseModel):
    query: str
    user_id: str | None
    alpha: float
    results: list[SearchHit]


def create_app(run_dir: str | Path) -> FastAPI:
    """The API for one run folder. Heavy parts (explainer, cold start, search) load on first use."""
    rec = Recommender.load(run_dir)
    lazy: dict = {}
    lock = threading.RLock()  # re-entrant: the cold-start part builds on the explainer part

    def part(name: str):
        with lock:
            if name not in lazy:
                if name == "explainer":
                    from .explain import Explainer

                    lazy[name] = Explainer.load(run_dir, rec)
                elif name == "coldstart":
                    from .coldstart import ColdStart

                    lazy[name] = ColdStart.from_explainer(part("explainer"))
                elif name == "searcher":
                    from .search import Searcher, load_run_catalog

                    lazy[name] = Searcher(rec, load_run_catalog(rec))
            return lazy[name]

    app = FastAPI(title="kgrec", version="1", description="Recommendations, explanations and search over a "
                  "trained kgrec run. Ids are the catalog's own (strings).")

    @app.middleware("http")
    async def limit_body(request: Request, call_next):
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        if size is None and request.method == "POST":
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        return await call_next(request)

    @app.exception_handler(KeyError)
    async def unknown_id(request: Request, exc: KeyError):
        return JSONResponse({"detail": str(exc.args[0]) if exc.args else "unknown id"}, status_code=404)

    @app.exception_handler(ValueError)
    async def bad_value(request: Request, exc: ValueError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": rec.served_name, "users": len(rec.user_ids), "products": len(rec.product_ids)}

    @app.post("/recommend", response_model=RecommendResponse)
    def recommend(req: RecommendRequest) -> dict:
        if req.product_ids is not None:
            rows = part("coldstart").recommend_new_user(req.product_ids, k=req.k)
            for r in rows:
                r["reason"] = "for a new shopper, from the products they picked"
        else:
            rows = rec.recommend(req.user_id, k=req.k, exclude_seen=req.exclude_seen)
        return {"user_id": req.user_id, "model": rec.served_name, "recommendations": rows}

    @app.post("/score", response_model=ScoreResponse)
    def score(req: ScoreRequest) -> dict:
        return {"user_ids": req.user_ids, "product_ids": req.product_ids,
                "scores": rec.score(req.user_ids, req.product_ids).tolist()}

    @app.post("/explain")
    def explain(req: ExplainRequest) -> dict:
        if rec.model_name not in GNN_MODELS:
            raise HTTPException(400, f"explanations need a GNN run; this run's model is {rec.model_name}")
        ex = part("explainer")
        with lock:  # one explanation at a time: each runs dozens of forward passes over the whole graph
            return ex.explain(req.user_id, req.product_id, top=req.top)

    @app.post("/search", response_model=SearchResponse)
    def search(req: SearchRequest) -> dict:
        rows = part("searcher").search(req.query, req.user_id, k=req.k, alpha=req.alpha)
        return {"query": req.query, "user_id": req.user_id, "alpha": req.alpha, "results": rows}

    return app


def serve(run_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info") -> None:
    import uvicorn

    uvicorn.run(create_app(run_dir), host=host, port=port, log_level=log_level)
