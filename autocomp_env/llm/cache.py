"""A persistent, content-addressed completion cache (sqlite in WAL mode), safe across threads and processes.

Key = sha256 of (model, messages, sampling params, sample index), so a seeded run asks for the same keys again
and replays offline bit for bit. Only successful answers are stored, each with its request (every prompt and
answer of a run can be read back with sqlite3); the first writer of a key wins.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    root = os.environ.get("AUTOCOMP_CACHE")
    return Path(root) / "llm" if root else Path.home() / ".cache" / "autocomp-env" / "llm"


def cache_key(model: str, messages: list[dict[str, str]], params: dict[str, Any], sample_index: int) -> str:
    blob = json.dumps(
        {"model": model, "messages": messages, "params": params, "sample": sample_index},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class CachedCompletion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    response_hash: str


class CompletionCache:
    """`get(key)` / `put(key, ...)` over `<dir>/completions.sqlite`. A connection per call keeps it fork-,
    thread- and pickle-safe at LLM call rates."""

    def __init__(self, directory: str | Path | None = None):
        self.dir = Path(directory) if directory else default_cache_dir()
        self.path = self.dir / "completions.sqlite"
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, model TEXT, text TEXT NOT NULL, "
                "prompt_tokens INTEGER, completion_tokens INTEGER, response_hash TEXT, created REAL, request TEXT)"
            )
            columns = {row[1] for row in db.execute("PRAGMA table_info(completions)")}
            if "request" not in columns:  # caches written before prompts were stored
                db.execute("ALTER TABLE completions ADD COLUMN request TEXT")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0)
        db.execute("PRAGMA synchronous=NORMAL")  # WAL keeps it consistent; a lost last entry is just a miss
        return db

    def get(self, key: str) -> CachedCompletion | None:
        db = self._connect()
        try:
            row = db.execute(
                "SELECT text, prompt_tokens, completion_tokens, response_hash FROM completions WHERE key=?", (key,)
            ).fetchone()
        finally:
            db.close()
        return CachedCompletion(row[0], int(row[1]), int(row[2]), row[3]) if row else None

    def put(self, key: str, model: str, entry: CachedCompletion, request: Any = None) -> None:
        """Store an answer and (for people auditing a run) the request that produced it."""
        row = (key, model, entry.text, entry.prompt_tokens, entry.completion_tokens, entry.response_hash, time.time())
        req = json.dumps(request, ensure_ascii=False) if request is not None else None
        db = self._connect()
        try:
            with db:
                db.execute(
                    "INSERT OR IGNORE INTO completions (key, model, text, prompt_tokens, completion_tokens, "
                    "response_hash, created, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (*row, req),
                )
        finally:
            db.close()

    def request(self, key: str) -> Any:
        """The stored request (messages, params, sample index) of `key`, or None."""
        db = self._connect()
        try:
            row = db.execute("SELECT request FROM completions WHERE key=?", (key,)).fetchone()
        finally:
            db.close()
        return json.loads(row[0]) if row and row[0] else None

    def __len__(self) -> int:
        db = self._connect()
        try:
            return int(db.execute("SELECT COUNT(*) FROM completions").fetchone()[0])
        finally:
            db.close()
