"""Documents → paragraph-aware, sentence-exact chunks with offsets into the cleaned text."""
from __future__ import annotations

import hashlib

from .text import sentence_spans
from .types import Chunk, Document


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-empty line: a paragraph of the cleaned text."""
    spans, pos = [], 0
    for line in text.split("\n"):
        if line.strip():
            spans.append((pos, pos + len(line)))
        pos += len(line) + 1
    return spans


def sentences(doc: Document, max_clause_chars: int = 60) -> list[tuple[int, int, int]]:
    """(paragraph, start, end) of every sentence of a document, in order."""
    out = []
    for p, (ps, pe) in enumerate(paragraph_spans(doc.text)):
        out.extend((p, ps + s, ps + e) for s, e in sentence_spans(doc.text[ps:pe], max_clause_chars))
    return out


def _chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]
    return f"{doc_id}:{start}-{end}:{digest}"


# 2: a sentence is never split between chunks (1 packed comma clauses, so a long sentence could straddle two)
CHUNKING_VERSION = 2


def _pieces(doc: Document, chunk_size: int, max_clause_chars: int) -> dict[int, list[tuple[int, int]]]:
    """Per paragraph, the spans chunks are packed from: whole sentences, except that a run-on sentence longer
    than twice `chunk_size` is cut at its commas into clauses of at most `max_clause_chars`."""
    out: dict[int, list[tuple[int, int]]] = {}
    for p, (ps, pe) in enumerate(paragraph_spans(doc.text)):
        spans = out.setdefault(p, [])
        for s, e in sentence_spans(doc.text[ps:pe], max_clause_chars=pe - ps + 1):
            if e - s > 2 * chunk_size:
                spans.extend((ps + s + a, ps + s + b) for a, b in sentence_spans(doc.text[ps + s : ps + e], max_clause_chars))
            else:
                spans.append((ps + s, ps + e))
    return out


def chunk_document(doc: Document, chunk_size: int = 120, overlap: int = 0, max_clause_chars: int = 60) -> list[Chunk]:
    """Pack consecutive whole sentences of a paragraph into chunks of at most `chunk_size` characters.

    A sentence is never split between chunks, so a passage always shows whole sentences and every answer unit
    (a sentence or comma clause, `sentences`) lies inside one chunk: a sentence longer than `chunk_size` becomes a
    chunk of its own; only one longer than twice `chunk_size` is cut at its commas into clauses of at most
    `max_clause_chars`, which are packed in turn. `overlap` trailing pieces of a chunk start the next one.
    """
    chunks: list[Chunk] = []
    for p, sents in _pieces(doc, chunk_size, max_clause_chars).items():
        if not sents:
            continue
        heading = doc.text[sents[0][0] : sents[0][1]]
        i = 0
        while i < len(sents):
            j = i + 1
            while j < len(sents) and sents[j][1] - sents[i][0] <= chunk_size:
                j += 1
            start, end = sents[i][0], sents[j - 1][1]
            text = doc.text[start:end]
            chunks.append(Chunk(_chunk_id(doc.id, start, end, text), doc.id, p, start, end, text, heading))
            if j >= len(sents):
                break
            i = max(i + 1, j - overlap)
    return chunks


def chunk_corpus(docs: list[Document], chunk_size: int = 120, overlap: int = 0, max_clause_chars: int = 60) -> list[Chunk]:
    """Chunks of every document, in corpus order."""
    return [c for d in docs for c in chunk_document(d, chunk_size, overlap, max_clause_chars)]
