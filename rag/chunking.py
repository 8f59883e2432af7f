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


def chunk_document(doc: Document, chunk_size: int = 120, overlap: int = 0, max_clause_chars: int = 60) -> list[Chunk]:
    """Pack consecutive sentences of a paragraph into chunks of at most `chunk_size` characters.

    A single sentence longer than `chunk_size` becomes a chunk of its own (sentences are never cut);
    `overlap` trailing sentences of a chunk start the next one.
    """
    chunks: list[Chunk] = []
    by_par: dict[int, list[tuple[int, int]]] = {}
    for p, s, e in sentences(doc, max_clause_chars):
        by_par.setdefault(p, []).append((s, e))
    for p, sents in by_par.items():
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
