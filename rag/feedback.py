"""👍/👎 feedback on answers, kept in SQLite; a locked or read-only database never breaks answering.

Rows that cannot be written are logged and kept in a bounded in-memory queue, written (in order) the next time
the database accepts a write. Rows are keyed by id, so recording the same id again (a reason added after the
thumb, a changed mind) updates the row instead of adding one.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import sqlite3
import sys
import threading
import uuid
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger(__name__)

RATINGS = ("up", "down", "none")
COLUMNS = ("id", "created_at", "updated_at", "rating", "reason", "question", "answer", "refused", "citations",
           "engine", "embedder", "settings_hash", "script", "source")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down', 'none')),
    reason TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT,
    refused INTEGER NOT NULL DEFAULT 0,
    citations TEXT NOT NULL DEFAULT '[]',
    engine TEXT NOT NULL DEFAULT '',
    embedder TEXT NOT NULL DEFAULT '',
    settings_hash TEXT NOT NULL DEFAULT '',
    script TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT ''
)"""
_UPSERT = (
    f"INSERT INTO feedback ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c not in ("id", "created_at"))
)
CITATION_KEYS = ("n", "doc_id", "paragraph", "start", "end", "quote", "chunk_id")  # what a row keeps of a citation
MAX_REASON_CHARS = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _clean(text: object, limit: int) -> str:
    s = "" if text is None else str(text)
    return "".join(ch for ch in s if ch in "\n\t" or ch.isprintable())[:limit]


class FeedbackStore:
    """Feedback rows in SQLite at `path`, with a bounded queue of rows waiting for the database to work again."""

    def __init__(self, path: str | Path, *, max_pending: int = 1000, timeout_s: float = 0.5) -> None:
        self.path = Path(path)
        self.timeout_s = timeout_s
        self._pending: deque[tuple] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._failing = False

    @property
    def pending(self) -> int:
        """Rows waiting in memory for the database."""
        return len(self._pending)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self.timeout_s)
        conn.execute(_SCHEMA)
        return conn

    def record(self, *, rating: str, question: str, answer: str | None, citations: Sequence[dict[str, Any]] = (),
               engine: str = "", embedder: str = "", settings_hash: str = "", reason: str = "",
               refused: bool = False, script: str = "", source: str = "chat", id: str | None = None) -> str:
        """Store (or update, for a known id) one feedback row; returns its id. Never raises for database trouble."""
        if rating not in RATINGS:
            raise ValueError(f"rating={rating!r} must be one of {RATINGS}")
        row_id = id or uuid.uuid4().hex
        now = _now()
        row = (row_id, now, now, rating, _clean(reason, MAX_REASON_CHARS), _clean(question, 10_000),
               None if answer is None else _clean(answer, 50_000), int(bool(refused)),
               json.dumps(list(citations), ensure_ascii=False), engine, embedder, settings_hash, script, source)
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                log.error("feedback queue full (%d rows): dropping the oldest row %s", self._pending.maxlen,
                          self._pending[0][0])
            self._pending.append(row)
            self._flush_locked()
        return row_id

    def flush(self) -> int:
        """Write the queued rows if the database works now; returns how many are still waiting."""
        with self._lock:
            self._flush_locked()
            return len(self._pending)

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        rows = list(self._pending)
        try:
            conn = self._connect()
            try:
                with conn:
                    conn.executemany(_UPSERT, rows)
            finally:
                conn.close()
        except (sqlite3.Error, OSError) as exc:
            log.warning("feedback database %s unavailable (%s: %s); %d row(s) kept in memory", self.path,
                        type(exc).__name__, exc, len(rows))
            self._failing = True
            return
        for _ in rows:
            self._pending.popleft()
        if self._failing:
            log.info("feedback database %s works again; wrote %d queued row(s)", self.path, len(rows))
            self._failing = False

    def rows(self) -> list[dict[str, Any]]:
        """Every stored row (not the queued ones), oldest first."""
        if not self.path.exists():
            return []
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=self.timeout_s)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY rowid")]
        finally:
            conn.close()

    def export_csv(self, out_path: str | Path) -> int:
        """Write every stored row to a CSV file (UTF-8 with BOM, for spreadsheets); returns the row count.

        Cells that a spreadsheet would run as a formula (=, +, -, @) get a leading apostrophe.
        """
        self.flush()
        rows = self.rows()
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
                                 for k, v in row.items()})
        return len(rows)


def export_main(argv: list[str] | None = None) -> int:
    """`python -m rag feedback-export OUT.csv [--db PATH]`: the feedback table as CSV."""
    parser = argparse.ArgumentParser(prog="python -m rag feedback-export",
                                     description="export the 👍/👎 feedback table as CSV")
    parser.add_argument("out", help="the CSV file to write")
    parser.add_argument("--db", help="the feedback database (default: the feedback_db setting)")
    args = parser.parse_args(argv)
    if args.db:
        db = Path(args.db)
    else:
        from .errors import RagError
        from .settings import build_settings

        try:
            db = build_settings().feedback_db
        except RagError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not db.exists():
        print(f"error: no feedback database at {db}; nothing has been recorded yet, or pass --db PATH",
              file=sys.stderr)
        return 1
    try:
        n = FeedbackStore(db).export_csv(args.out)
    except (sqlite3.Error, OSError) as exc:
        print(f"error: cannot export {db} to {args.out} ({exc})", file=sys.stderr)
        return 2
    print(f"wrote {n} feedback row(s) from {db} to {args.out}", file=sys.stderr)
    return 0
