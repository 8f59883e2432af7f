"""Cleaning, script detection and conversion, tokens, sentence splitting — on the real document."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.text import (CJK, clean, detect_script, find_artifacts, normalize, s2t, split_sentences,
                      t2s, to_script, tokenize)

PINYIN = re.compile(r"\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)")


def _keep(s: str) -> str:
    """Every character that is neither ASCII letter/paren nor whitespace: what cleaning must keep in order."""
    return "".join(c for c in s if not re.match(r"[A-Za-z()\s□āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]", c))


def test_cleaning_removes_exactly_the_223_pinyin_groups_and_the_box(raw_text):
    spans = find_artifacts(raw_text)
    groups = [raw_text[s:e] for s, e in spans if raw_text[s:e] != "□"]
    assert len(groups) == 223 == len(PINYIN.findall(raw_text))
    assert [raw_text[s:e] for s, e in spans].count("□") == 1
    cleaned = clean(raw_text)
    assert "(" not in cleaned and ")" not in cleaned and "□" not in cleaned
    assert not re.search(r"[A-Za-z]", cleaned)
    # not one Chinese character, digit or punctuation mark is lost or added, and their order is unchanged
    assert _keep(cleaned) == _keep(raw_text)
    assert len(re.findall(f"[{CJK}]", cleaned)) == len(re.findall(f"[{CJK}]", raw_text))
    assert re.findall(r"\d", cleaned) == re.findall(r"\d", raw_text) == list("20315315")
    assert cleaned.startswith("溫州市科技局局長顧威\n")
    assert "科創指數貸" in cleaned and "甌江實驗室" in cleaned


def test_cleaning_variants():
    assert clean("局長（zhǎng）顧威") == "局長顧威"
    assert clean("創業(chuàng yè)者") == "創業者"
    assert clean("創業(chuangye)者") == "創業者"
    assert clean("長(zhang3)大") == "長大"
    assert clean("人工智能(AI)產業") == "人工智能(AI)產業"  # an acronym is not pinyin
    assert clean("溫州(Wenzhou City)") == "溫州(Wenzhou City)"  # 'city' is not pinyin
    assert clean("2023(year)年") == "2023(year)年"  # not after a CJK character
    assert clean("  甲  乙 \n\n\n丙  ") == "甲 乙\n丙"


def test_script_detection():
    assert detect_script("科创指数贷是什么") == "hans"
    assert detect_script("科創指數貸是什麼") == "hant"
    assert detect_script("Tell me about the index loan, please.") == "en"
    assert detect_script("温州") in ("hans", "hant")
    assert detect_script("12345") == "en"


def test_conversion_round_trip():
    assert t2s("科創指數貸") == "科创指数贷"
    assert s2t("科创指数贷") == "科創指數貸"
    assert to_script("甌江實驗室", "hans") == "瓯江实验室"
    assert normalize(" 科創 指數貸 ") == "科创指数贷"


def test_tokens_are_script_agnostic():
    assert tokenize("科创指数贷") == tokenize("科創指數貸") == ["科创", "创指", "指数", "数贷"]
    assert "AI" not in tokenize("AI 2023") and "ai" in tokenize("AI 2023") and "2023" in tokenize("AI 2023")
    assert "科创" in tokenize("科创指数贷", "jieba+bigram")
    assert set(tokenize("科创", "unigram+bigram")) == {"科创", "科", "创"}


def test_sentence_splitter(document):
    text = "第一句。第二句！第三句？第四句；第五句"
    assert split_sentences(text) == ["第一句。", "第二句！", "第三句？", "第四句；", "第五句"]
    # quoted terms are never cut, even when they contain a terminator
    quoted = "他說“這是。一個詞”然後走了。"
    assert split_sentences(quoted) == [quoted]
    # long clauses are cut at ASCII commas, short sentences are not
    long = ",".join(["推進科技戰略平臺建設"] * 10) + "。"
    pieces = split_sentences(long, max_clause_chars=30)
    assert "".join(pieces) == long and len(pieces) > 1 and all(len(p) <= 33 for p in pieces)
    # the eight 抓手 clause survives whole in the real document
    sents = split_sentences(document.text)
    assert any("推進科技戰略平臺建設" in s and "科技金融發展" in s for s in sents)


@given(st.text(max_size=200))
def test_clean_never_adds_and_keeps_cjk(text):
    out = clean(text)
    assert len(re.findall(f"[{CJK}]", out)) == len(re.findall(f"[{CJK}]", text.replace("□", "")))
    assert clean(out) == out


# --- scraped pages: the policy library -------------------------------------------------------------------------

LIBRARY = sorted((Path(__file__).resolve().parents[1] / "data" / "library").glob("gov-work-report-*.txt"))


def _visible(text: str) -> str:
    return re.sub(r"[\s\u200b-\u200f\u2060\ufeff]", "", text)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_a_scraped_report_loses_its_boilerplate_and_nothing_of_its_body(path):
    from rag.text import cleaning_report

    from rag.text import clean_document

    raw = path.read_text(encoding="utf-8")
    cleaned, header = clean_document(raw)
    report = cleaning_report(raw)
    # what went: blank-line runs, notice lines at the end, lines split mid-sentence joined to the one before
    assert report["blank_lines"] > 100 and report["notice_lines"] >= 4
    assert report["paragraphs"] == len(cleaned.split("\n"))
    assert report["raw_lines"] == (report["blank_lines"] + report["joined_lines"] + report["notice_lines"]
                                   + report["header_lines"] + report["paragraphs"]
                                   + sum(1 for line in raw.split("\n") if line.strip() and not _visible(line)))
    # a title block (title, date, speaker lines) goes into the metadata, not the text
    assert report["header_lines"] == len(header) and (len(header) in (0, 3))
    assert not header or (header[0] == "政府工作报告" and header[1].startswith("——") and "李克强" in header[2])
    assert "\n\n" not in cleaned and "Public domain" not in cleaned and "维基" not in cleaned
    # nothing of the body lost or moved: the cleaned characters are the raw ones up to the notices, in order
    head = _visible("".join(header))
    assert _visible(raw).startswith(head)
    after = _visible(raw)[len(head):]
    body, rest = after[: len(_visible(cleaned))], after[len(_visible(cleaned)):]
    assert body == _visible(cleaned)
    assert re.search("维基|Publicdomain", rest) and len(rest) < 400


def test_a_line_split_mid_word_is_joined_and_a_byline_is_not():
    scraped = "政府工作报\n告\n\n\n——2017年3月5日\n\n\n各位代表：\n\n\n过去一年国内生产总值达到74.4\n\u200b\n万亿元，增长6.7%。\n\n"
    scraped += "细颗粒物（PM\n2.5\n）浓度下降。\n\n一、工作回顾\n\n\n正文一段。\n\n\n结束了。\n\n\n注：维基文库说明\n\n\nPublic domain\nfalse"
    # the title block (a title line and a date line) leaves the text for the metadata
    assert clean(scraped).split("\n") == ["各位代表：",
                                          "过去一年国内生产总值达到74.4万亿元，增长6.7%。", "细颗粒物（PM2.5）浓度下降。",
                                          "一、工作回顾", "正文一段。", "结束了。"]
    speech = "某局局长某某\n今年是开局之年。\n我们将做好工作。"  # no blank lines: every line is a paragraph
    assert clean(speech).split("\n") == ["某局局长某某", "今年是开局之年。", "我们将做好工作。"]
