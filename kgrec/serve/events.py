"""Real-time events: what shoppers do after the run was trained, applied without retraining.

``POST /events`` appends each event to a durable log, ``RUN_DIR.state/events.jsonl`` beside the run
folder (so it survives a refresh that replaces the folder), and fsyncs it before answering: an event
that got a 200 is on disk. The event also joins the user's history in memory at once, so the next
recommendation reflects it: path scores count it, and it is excluded as seen. A user the run does not
know is served by cold start from their events (:class:`kgrec.serve.coldstart.ColdStart`), from the
first one. At start the server replays the log. ``kgrec refresh --events`` folds the log into the next
run as interactions.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch

from kgrec.data.interactions import UserItems
from kgrec.data.schema import load_schema
from kgrec.errors import KgrecError

MAX_EVENT_TEXT = 2000


def state_dir(run_dir: str | Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f"{run_dir.name}.state"


def log_path(run_dir: str | Path) -> Path:
    return state_dir(run_dir) / "events.jsonl"


@dataclass(frozen=True)
class Event:
    user_id: str
    product_id: str
    kind: str = "purchase"
    timestamp: float | None = None
    rating: float | None = None

    @classmethod
    def parse(cls, raw: dict) -> Event:
        """A checked event (``KgrecError`` naming the field otherwise)."""
        kinds = load_schema().interaction_kinds
        user, product = raw.get("user_id"), raw.get("product_id")
        for name, value in (("user_id", user), ("product_id", product)):
            if not isinstance(value, str) or not value.strip() or len(value) > 200:
                raise KgrecError(f"an event needs {name}: a non-empty string of at most 200 characters")
        kind = raw.get("kind") or "purchase"
        if kind not in kinds:
            raise KgrecError(f"unknown event kind {kind!r}; one of {', '.join(kinds)}")
        ts = raw.get("timestamp")
        if ts is not None and (not isinstance(ts, (int, float)) or not 0 <= ts < 1e11):
            raise KgrecError("timestamp must be epoch seconds")
        rating = raw.get("rating")
        if rating is not None and (not isinstance(rating, (int, float)) or not 0 <= rating <= 5):
            raise KgrecError("rating must be a number from 0 to 5")
        return cls(user.strip(), product.strip(), kind, float(ts) if ts is not None else time.time(),
                   float(rating) if rating is not None else None)


class EventLog:
    """Append-only JSON lines, fsynced per append; a torn last line (a crash mid-write) is skipped."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def append(self, event: Event) -> None:
        line = json.dumps(asdict(event), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:  # the new file's directory entry must be durable too
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    def read(self) -> list[Event]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(Event(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue  # a line torn by a crash before its fsync: never acknowledged
        return out


class LiveHistory:
    """A run's histories plus the logged events, kept in the run's :class:`Recommender` in memory."""

    def __init__(self, rec, run_dir: str | Path):
        self.rec = rec
        self.log = EventLog(log_path(run_dir))
        self._lock = threading.Lock()
        self._extra: list[tuple[int, int]] = []  # (user row, product row) of known users
        self.new_users: dict[str, list[str]] = {}  # users the run does not know → their products
        self.events = 0
        for event in self.log.read():
            self._apply(event)
        self._rebuild()

    def add(self, raw: dict) -> dict:
        """Check, log durably, apply. Returns what the user's history now holds."""
        event = Event.parse(raw)
        self.rec.product_index([event.product_id])  # an unknown product is a 404, before anything is logged
        self.log.append(event)
        with self._lock:
            self._apply(event)
            self._rebuild()
        known = event.user_id in self.rec.run.index("user")
        return {"status": "logged", "user_id": event.user_id, "known_user": known, "events": self.events}

    def _apply(self, event: Event) -> None:
        users = self.rec.run.index("user")
        products = self.rec.run.index("product")
        if event.product_id not in products:
            return  # a product of another catalog (an older log): kept in the log, not applied
        self.events += 1
        if event.user_id in users:
            self._extra.append((users[event.user_id], products[event.product_id]))
        else:
            self.new_users.setdefault(event.user_id, []).append(event.product_id)

    def _rebuild(self) -> None:
        """New history and seen indexes with the events; swapped in whole (readers see old or new)."""
        if not self._extra:
            return
        run = self.rec.run
        extra = torch.tensor(self._extra, dtype=torch.long)
        n_u, n_i = len(run.user_ids), len(run.product_ids)
        history = UserItems(torch.cat([run.ckpt["train_users"], extra[:, 0]]),
                            torch.cat([run.ckpt["train_items"], extra[:, 1]]), n_u, n_i)
        seen = UserItems(torch.cat([run.ckpt["seen_users"], extra[:, 0]]),
                         torch.cat([run.ckpt["seen_items"], extra[:, 1]]), n_u, n_i)
        model = run.model
        base = getattr(model, "base", model)
        if hasattr(base, "history"):
            base.history = history  # item-kNN / EASE score from the history
        if run.hybrid is not None:
            run.hybrid.prior.history = history  # path scores count the events
        self.rec.train, self.rec.seen = history, seen
        self.rec._item_users = None

    def recommend_new_user(self, user_id: str, k: int, coldstart) -> list[dict] | None:
        """Recommendations for a user the run does not know, from their events (None without any)."""
        products = self.new_users.get(user_id)
        if not products:
            return None
        rows = coldstart.recommend_new_user(list(dict.fromkeys(products)), k=k)
        for r in rows:
            r["reason"] = "for a new shopper, from what they did so far"
        return rows


def events_frame(run_dir: str | Path) -> pd.DataFrame:
    """The logged events as interaction rows (for ``kgrec refresh --events``)."""
    rows = [{"user_id": e.user_id, "product_id": e.product_id, "kind": e.kind, "rating": e.rating,
             "timestamp": int(e.timestamp) if e.timestamp is not None else None}
            for e in EventLog(log_path(run_dir)).read()]
    return pd.DataFrame(rows, columns=["user_id", "product_id", "kind", "rating", "timestamp"])
