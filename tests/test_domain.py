"""A corpus's knowledge as data (rag.domain, rag.lexicon): mined from the documents, declared beside them, saved
in the index. Real documents: the speech and reports of the policy library."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import CORPUS, RAW_PATH, make_settings
from rag.domain import (build_domain, declared_hashes, domain_from_json, domain_to_json, frequent_strings,
                        list_members, quoted_terms, read_meta)
from rag.errors import CorpusError
from rag.ingest import load_corpus, load_document
from rag.lexicon import Lexicon
from rag.text import normalize

LIBRARY = Path(__file__).resolve().parents[1] / "data" / "library"


def test_quoted_terms_and_list_members_are_mined():
    text = normalize("推广应用“甲乙贷”,打造“丙丁池”。推进东区建设、西区建设、南区建设等。")
    assert quoted_terms(text) == ["甲乙贷", "丙丁池"]
    assert list_members(text) == ["推进东区建设", "西区建设", "南区建设"]  # 等 dropped


def test_frequent_strings_stand_on_word_boundaries():
    text = normalize("发展数字经济。数字经济很重要。壮大数字经济规模。做强数字经济。") * 2
    assert frequent_strings(text, min_count=3) == ["数字经济"]  # not its pieces 数字经 / 字经济, nor 经济很
    assert frequent_strings(text, min_count=9) == []


def test_the_speech_describes_itself_through_its_metadata(document):
    declared = json.loads((CORPUS / "wenzhou-2023-sci-tech-plan.meta.json").read_text(encoding="utf-8"))
    meta = read_meta(document, declared)
    assert meta.kind == "讲话" and meta.kind_en == "speech" and meta.speaker == "顾威" and meta.date == "2023"
    assert meta.source["speaker"] == "metadata file" and meta.source["kind"] == "metadata file"
    bare = read_meta(document)  # without the file: the byline alone still names the speaker and the kind
    assert bare.speaker == "顾威" and bare.role.endswith("局长") and bare.kind == "讲话"
    assert bare.source["speaker"] == "byline" and bare.source["kind"] == "byline"


@pytest.mark.parametrize("year,title", [("2017", "政府工作报告"), ("2019", "gov-work-report-2019")])
def test_a_report_names_its_kind_from_its_own_lines(year, title):
    doc = load_document(LIBRARY / f"gov-work-report-{year}.txt")
    meta = read_meta(doc)
    assert meta.kind == "报告" and meta.kind_en == "report"  # "向大会报告政府工作…提出意见": the first kind word
    assert meta.title == title and meta.date.startswith(year)
    if doc.header:  # a scraped title block: title, date of delivery and speaker come from it
        assert meta.date == f"{year}-03-05" and meta.speaker == "李克强" and meta.source["date"] == "title block"


def test_declared_knowledge_needs_provenance_and_valid_json(tmp_path):
    shutil.copy(RAW_PATH, tmp_path / RAW_PATH.name)
    docs = load_corpus(tmp_path)
    (tmp_path / "domain.json").write_text(json.dumps({"synonyms": []}), encoding="utf-8")
    with pytest.raises(CorpusError, match="_provenance"):
        build_domain(docs, tmp_path)
    (tmp_path / "domain.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CorpusError, match="not readable JSON"):
        build_domain(docs, tmp_path)
    (tmp_path / "domain.json").write_text(json.dumps({"_provenance": "a test", "glossary": [{"en": ["(bad"], "zh": "甲"}]}),
                                          encoding="utf-8")
    with pytest.raises(CorpusError, match="regular expression"):
        build_domain(docs, tmp_path)


def test_declared_synonyms_and_glossary_reach_the_lexicon(tmp_path):
    shutil.copy(RAW_PATH, tmp_path / RAW_PATH.name)
    (tmp_path / "domain.json").write_text(json.dumps({
        "_provenance": "written for this test",
        "synonyms": [{"ask": ["小额借款"], "means": ["科创指数贷"]}],
        "glossary": [{"en": [r"\bloan"], "zh": "科创指数贷", "name": "the index loan"}]}), encoding="utf-8")
    docs = load_corpus(tmp_path)
    domain = build_domain(docs, tmp_path)
    lexicon = Lexicon(domain, docs)
    assert lexicon.expand("想要小额借款") == ["科创指数贷"]
    assert lexicon.english_terms("Is there a loan for firms?") == ["科创指数贷"]
    assert domain.english_name(normalize("推广应用“科创指数贷”")) == "the index loan"
    assert domain.provenance == {"domain.json": "written for this test"}
    assert domain_from_json(json.loads(json.dumps(domain_to_json(domain), ensure_ascii=False))) == domain


def test_without_declared_files_the_engine_still_mines_its_terms(tmp_path):
    shutil.copy(RAW_PATH, tmp_path / RAW_PATH.name)
    docs = load_corpus(tmp_path)
    domain = build_domain(docs, tmp_path)
    assert not domain.synonyms and not domain.glossary and declared_hashes(tmp_path) == {}
    assert domain.term_source["科创指数贷"] == "quoted"
    assert Lexicon(domain, docs).segment("科创指数贷怎么用")[0] == "科创指数贷"  # kept whole by the segmenter


def test_homophone_typos_are_repaired_against_the_corpus(pipeline):
    lexicon = pipeline.lexicon
    assert "科创指数贷" in lexicon.repair("科创指数代", ())
    assert "科创基金" in lexicon.repair("科创基今有多少", ())
    assert lexicon.repair("科创指数贷", ()) == []  # nothing to repair in the corpus's own words
    assert lexicon.repair("今天天气", ()) == []


def test_the_index_saves_the_domain_and_a_changed_declaration_makes_it_stale(tmp_path):
    from rag.embeddings import resolve_embedder
    from rag.errors import IndexStaleError
    from rag.store import build_index, load_index

    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = make_settings(tmp_path / "index", corpus_dir=corpus)
    embedder = resolve_embedder(settings)
    build_index(settings, embedder)
    index = load_index(settings, embedder.name)
    assert index.domain.meta().title == "温州市科技局局长顾威讲话"
    assert index.manifest["domain"]["declared"]["domain.json"].startswith("Curated")
    data = json.loads((corpus / "domain.json").read_text(encoding="utf-8"))
    data["self"].append("某地")
    (corpus / "domain.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(IndexStaleError, match="declared"):
        load_index(settings, embedder.name)
