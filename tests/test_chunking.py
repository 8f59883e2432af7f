"""Chunks are exact spans of the cleaned text, paragraph-aware and sentence-exact."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import chunk_document, paragraph_spans
from rag.types import Document


def test_real_document_chunks(document):
    chunks = chunk_document(document, chunk_size=120, overlap=0)
    assert len(chunks) >= 10
    assert len({c.id for c in chunks}) == len(chunks)
    for c in chunks:
        assert document.text[c.start : c.end] == c.text
        assert "\n" not in c.text
        assert c.heading and document.text.find(c.heading) <= c.start
    paragraphs = {c.paragraph for c in chunks}
    assert paragraphs == set(range(len(paragraph_spans(document.text))))
    assert chunks[0].text == "溫州市科技局局長顧威"
    # without overlap the chunks tile each paragraph
    joined = "".join(c.text for c in chunks if c.paragraph == 4)
    s, e = paragraph_spans(document.text)[4]
    assert joined == document.text[s:e]
    # a sentence is never split between chunks: the closing sentence (115 characters) is one passage
    closing = document.text.index("溫州將始終堅持創新首位戰略")
    assert any(c.start == closing and c.text.endswith("科技支撐。") for c in chunks)
    assert max(len(c.text) for c in chunks) <= 2 * 120


def test_size_and_overlap_change_chunks(document):
    small = chunk_document(document, chunk_size=40, overlap=0)
    large = chunk_document(document, chunk_size=400, overlap=0)
    overlapped = chunk_document(document, chunk_size=120, overlap=1)
    assert len(small) > len(chunk_document(document, 120, 0)) > len(large)
    assert len(overlapped) > len(chunk_document(document, 120, 0))
    assert any(a.end > b.start and a.paragraph == b.paragraph for a, b in zip(overlapped, overlapped[1:]))


def test_ids_are_deterministic(document):
    assert [c.id for c in chunk_document(document)] == [c.id for c in chunk_document(document)]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("溫州科技創新平臺。，,；“”\n x1")), min_size=1, max_size=400),
       st.integers(20, 200), st.integers(0, 3), st.integers(10, 80))
def test_offsets_invariant_on_arbitrary_text(text, size, overlap, clause):
    doc = Document(id="d", title="t", text=text, path="-", sha256="0")
    chunks = chunk_document(doc, size, overlap, clause)
    for c in chunks:
        assert text[c.start : c.end] == c.text and c.text.strip() == c.text and c.text
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
