"""The outline built at ingestion (rag.outline) on the speech and on reports of the policy library: sections and
headings, items, lists and abbreviations, each node saying how it was recognised; and the conversation's state."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import RAW_PATH
from rag.conversation import rebuild, shown_list
from rag.ingest import load_document
from rag.outline import build_outline, outline_from_json, outline_to_json
from rag.text import normalize

LIBRARY = Path(__file__).resolve().parents[1] / "data" / "library"


def outline_of(path):
    doc = load_document(path)
    return doc, build_outline([doc])


def test_the_speech_has_three_parallel_parts_between_an_opening_and_a_closing():
    doc, nodes = outline_of(RAW_PATH)
    parts = [n for n in nodes if n.kind == "part"]
    assert [normalize(p.title)[:8] for p in parts] == ["牢固树立平台战略", "切实强化创新主体", "始终坚持人才引领"]
    assert all(p.how == "parallel lead sentences" and p.level == 1 for p in parts)
    assert [p.ordinal for p in parts] == [1, 2, 3]
    passages = [n for n in nodes if n.kind == "passage"]
    assert [p.how for p in passages] == ["opening", "opening", "closing"]
    for n in nodes:  # every node's heading is the document's own text at its offsets
        if n.kind != "document":
            assert doc.text[n.head_start : n.head_end] == n.title


def test_the_speech_items_lists_and_abbreviation():
    doc, nodes = outline_of(RAW_PATH)
    second = [n for n in nodes if n.kind == "part"][1]
    items = [nodes[c] for c in second.children if nodes[c].kind == "item"]
    assert [normalize(i.title)[:6] for i in items] == ["大抓科技企业", "大抓核心技术", "大抓科技金融"]
    assert {i.how for i in items} == {"parallel lead 大抓"}
    levers = next(n for n in nodes if n.how == "、-list" and "高水平大学建设" in normalize(n.title))
    members = [normalize(nodes[c].title) for c in levers.children]
    assert len(members) == 8 and members[2] == "企业技术改造" and members[-1] == "科技金融发展"
    abbreviation = next(n for n in nodes if n.how == "abbreviation" and normalize(n.title) == "一区一廊一会一室一集群")
    spelled = [normalize(nodes[c].title) for c in abbreviation.children]
    assert len(spelled) == 5 and "峰会" in spelled[2] and "实验室" in spelled[3] and "集群" in spelled[4]


@pytest.mark.parametrize("year,first,last,tasks", [
    ("2019", "2018年工作回顾", "2019年政府工作任务", 10),
    ("2022", "2021年工作回顾", "2022年政府工作任务", 9),
])
def test_a_report_has_its_numbered_sections_and_tasks(year, first, last, tasks):
    doc, nodes = outline_of(LIBRARY / f"gov-work-report-{year}.txt")
    top = [n for n in nodes if n.kind == "section" and n.level == 1]
    assert len(top) == 3 and normalize(top[0].title).endswith(first) and normalize(top[-1].title).endswith(last)
    assert {n.how for n in top} == {"numbered heading 一、"}
    subs = [nodes[c] for c in top[-1].children if nodes[c].kind == "section"]
    assert len(subs) == tasks and all(s.how == "numbered heading （一）" for s in subs)
    assert normalize(subs[0].title).startswith("(一)")
    review = [nodes[c] for c in top[0].children if nodes[c].how == "series 一是"]
    assert len(review) == 8 and normalize(review[1].title).startswith("二是")
    assert all(top[i].end <= top[i + 1].start for i in range(len(top) - 1))  # sections do not overlap


def test_the_outline_survives_its_json():
    _, nodes = outline_of(RAW_PATH)
    assert outline_from_json(outline_to_json(nodes)) == nodes


def test_the_conversation_state_knows_the_list_just_shown_and_the_topic(pipeline):
    outline = pipeline.index.outline
    levers = pipeline.ask("讲话提到的八个抓手是哪些？")
    found = shown_list(levers.text, outline)
    assert found is not None and len(found[1]) == 8
    state = rebuild([["讲话提到的八个抓手是哪些？", levers.text]], pipeline.units, outline, pipeline.lexicon)
    assert len(state.listing) == 8 and state.units and state.section is not None
    fund = pipeline.ask("科创基金要怎么发展？")
    state = rebuild([["科创基金要怎么发展？", fund.text]], pipeline.units, outline, pipeline.lexicon)
    assert "科创基金" in state.topic and state.topic_span is not None
    assert rebuild([], pipeline.units, outline, pipeline.lexicon).empty
