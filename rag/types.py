"""The project's own value types: every stage exchanges these, never raw arrays or framework objects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Document:
    """One cleaned source document; `text` is the canonical text every offset points into."""

    id: str
    title: str
    text: str
    path: str
    sha256: str  # of the raw file, for staleness checks
    header: tuple[str, ...] = ()  # the title block taken off a scraped page (title, date, speaker lines)


@dataclass(frozen=True)
class Chunk:
    """A contiguous span of a document's cleaned text: `doc.text[start:end] == text`."""

    id: str
    doc_id: str
    paragraph: int
    start: int
    end: int
    text: str
    heading: str = ""


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the per-retriever scores behind it."""

    chunk: Chunk
    score: float
    rank: int
    scores: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Citation:
    """A numbered citation: the passage (chunk) and the exact quoted sentence inside its document."""

    n: int
    chunk: Chunk
    quote: str  # original cleaned text, == doc.text[start:end]
    start: int
    end: int
    document: str = ""  # the document's title (its metadata)
    section: str = ""  # the headings of the sections holding the quote, outermost first, joined by " · "


@dataclass(frozen=True)
class Answerability:
    """What the answerability check decided and why; `score` is the calibrated signal."""

    answerable: bool
    score: float
    reason: str = ""
    asks_for: str = ""  # quantity | time | person | named | procedure | ""
    topic: str = ""
    off_topic: bool = False  # none of the question's content words is in the corpus


@dataclass(frozen=True)
class Answer:
    """The result of one question: what the app, CLI and evaluation all consume."""

    question: str
    text: str | None
    refused: bool
    citations: tuple[Citation, ...]
    hits: tuple[Hit, ...]
    engine: str
    embedder: str
    timings_ms: Mapping[str, float]
    script: str = "hans"
    notice: str = ""
    answerability: Answerability | None = None
    retrieval_query: str = ""
    verification: Mapping[str, Any] | None = None  # an LLM answer's verification: claims, support, action
