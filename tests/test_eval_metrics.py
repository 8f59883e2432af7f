"""eval.metrics on hand-made rows: exact values, NaN when nothing counts, intervals, script and echo rules."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from eval.metrics import (BY_KEY, HEADLINE, METRICS, Verdict, bootstrap, check_thresholds, contains, judge, lookup,
                          paired_delta, passage_baseline, summarize, value_of, worst)
from eval_rows import make_row

FILLER = "今年是贯彻党的二十大精神的开局之年"


def v(metrics, key):
    return value_of(metrics, key)


def n(metrics, key):
    return lookup(metrics, key)["n"]


def test_matching_rule_normalises_script_width_case_and_space():
    assert contains("推廣應用“科創指數貸”", "科创指数贷")  # Traditional text, Simplified evidence
    assert contains("ＡＢＣ　１２３ 項目", "abc123项目")  # full width, case, whitespace
    assert not contains("科创基金", "科创指数贷")
    assert not contains(None, "x") and not contains("", "x")


def test_retrieval_metrics_exact():
    rows = [
        # first gold hit at rank 2, in Traditional script
        make_row("a", gold=["科创指数贷"], ranking=[FILLER, "推廣應用“科創指數貸”", FILLER]),
        # two gold strings: one at rank 1, the other only at rank 7 (outside the top 5)
        make_row("b", gold=["顾威", "八八战略"],
                 ranking=["溫州市科技局局長顧威", *[FILLER] * 5, "“八八戰略”實施20周年"]),
        make_row("c", gold=["瓯江实验室"], ranking=[FILLER] * 10),  # a miss
        make_row("d", answerable=False, gold=["顾威"], ranking=["顾威"]),  # not answerable: not counted
        make_row("e", gold=[], ranking=["顾威"]),  # no gold evidence: not counted
    ]
    m = summarize(rows)
    assert v(m, "retrieval.hit@1") == pytest.approx(1 / 3)
    assert v(m, "retrieval.hit@3") == pytest.approx(2 / 3)
    assert v(m, "retrieval.hit@5") == pytest.approx(2 / 3)
    assert v(m, "retrieval.mrr@10") == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert v(m, "retrieval.evidence_recall@5") == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert n(m, "retrieval.hit@1") == 3
    assert judge(rows[0]).first_hit_rank == 2 and judge(rows[2]).first_hit_rank is None


def test_mrr_counts_only_the_top_ten():
    row = make_row("a", gold=["顾威"], ranking=[FILLER] * 10 + ["顾威"])
    assert judge(row).first_hit_rank is None
    assert v(summarize([row]), "retrieval.mrr@10") == 0.0


def test_without_answers_answer_metrics_are_nan_never_zero():
    rows = [make_row("a", gold=["顾威"], must_include=["顾威"], must_not=["x"], ranking=["顾威"]),
            make_row("b", answerable=False, ranking=[FILLER])]
    m = summarize(rows)
    assert v(m, "retrieval.hit@1") == 1.0
    assert v(m, "answer.answered_rate") == 0.0
    for key in HEADLINE:
        if key.startswith("answer.") and key != "answer.answered_rate":
            entry = lookup(m, key)
            assert entry == {"value": None, "ci95": [None, None], "n": 0}, key
            assert math.isnan(v(m, key))
    json.dumps(m, allow_nan=False)  # NaN never reaches the JSON


def answer_rows():
    gold1 = "温州市科技局局长顾威"
    passage2 = "大抓科技金融發展,復制推廣技術產權證券化試點,做大做強科創基金,推廣應用“科創指數貸”"
    return [
        # every term found; two citations: the first holds the evidence (its quote does not), the second neither
        make_row("r1", question="这篇讲话是谁讲的？", gold=[gold1], must_include=["顾威", "局长"],
                 answer="讲话人是温州市科技局局长顾威。",
                 citations=[("溫州市科技局局長顧威", "今年是貫徹黨的二十大精神的開局之年"), (FILLER, FILLER)]),
        # one of three terms; one citation whose passage and quote both hold evidence, covering both gold strings
        make_row("r2", question="科技金融怎么做？", gold=["推广应用“科创指数贷”", "做大做强科创基金"],
                 must_include=["科创指数贷", "科创基金", "证券化"], answer="推广应用科创指数贷。",
                 citations=[(passage2, "推廣應用“科創指數貸”")]),
        # an answerable question refused: no terms, no citations, a false refusal
        make_row("r3", question="创新首位战略是什么？", gold=["创新首位战略"], must_include=["创新首位战略"],
                 answer="文档没有提到。", refused=True),
        # unanswerable, correctly refused
        make_row("r4", question="温州有多少人口？", answerable=False, answer="抱歉，文档没有提到。", refused=True),
        # unanswerable, answered with an invented figure; "GDP" only echoes the question
        make_row("r5", question="温州GDP是多少？", answerable=False, must_not=["一万亿", "gdp"],
                 answer="温州的GDP是一万亿。"),
        # no answer at all (no engine for this row): counted nowhere but answered_rate
        make_row("r6", question="温州有几个实验室？", answerable=False),
    ]


def test_answer_metrics_exact():
    m = summarize(answer_rows())
    assert v(m, "answer.answered_rate") == pytest.approx(5 / 6)
    assert v(m, "answer.must_include_recall") == pytest.approx(3 / 6)  # pooled: (2 + 1 + 0) / (2 + 3 + 1)
    assert n(m, "answer.must_include_recall") == 3
    assert v(m, "answer.all_terms_rate") == pytest.approx(1 / 3)
    assert v(m, "answer.citation_precision") == pytest.approx(2 / 3)  # r1: yes, no; r2: yes
    assert n(m, "answer.citation_precision") == 2
    assert v(m, "answer.quote_precision") == pytest.approx(1 / 3)  # r1: no, no; r2: yes
    assert v(m, "answer.citation_recall") == pytest.approx(3 / 4)  # r1 1/1, r2 2/2, r3 0/1
    assert v(m, "answer.refusal_accuracy") == pytest.approx(1 / 2)  # r4 refused, r5 not; r6 has no answer
    assert n(m, "answer.refusal_accuracy") == 2
    assert v(m, "answer.false_refusal_rate") == pytest.approx(1 / 3)
    assert v(m, "answer.must_not_violations") == 1
    assert v(m, "answer.must_not_violation_rate") == pytest.approx(1 / 5)
    assert n(m, "answer.must_not_violation_rate") == 5
    assert v(m, "answer.script_match") == 1.0 and n(m, "answer.script_match") == 5


def test_must_include_uses_the_answer_text_not_the_quotes():
    row = make_row("a", gold=["科创指数贷"], must_include=["科创指数贷"], answer="见引文。",
                   citations=[("推廣應用“科創指數貸”", "推廣應用“科創指數貸”")])
    assert v(summarize([row]), "answer.must_include_recall") == 0.0


def test_must_not_echo_of_the_question_is_not_a_violation():
    # the question names the term (in Traditional script): repeating it is not an invention
    echo = make_row("a", question="溫州的科創指數貸利率是多少？", answerable=False, must_not=["科创指数贷利率"],
                    answer="文档没有提到科创指数贷利率。", refused=True)
    invented = make_row("b", question="温州的贷款利率是多少？", answerable=False, must_not=["3.5%"],
                        answer="利率为３.５％。")  # full-width digits still match
    assert judge(echo).must_not_found == () and judge(echo).must_not_echoed == ("科创指数贷利率",)
    assert judge(invented).must_not_found == ("3.5%",)
    m = summarize([echo, invented])
    assert v(m, "answer.must_not_violations") == 1
    assert v(m, "answer.must_not_violation_rate") == 0.5


@pytest.mark.parametrize("question, answer, expected", [
    ("温州怎么发展科技金融？", "推广应用科创指数贷。", True),
    ("温州怎么发展科技金融？", "推廣應用科創指數貸，做大做強科創基金。", False),
    ("溫州怎麼發展科技金融？", "推廣應用科創指數貸，做大做強科創基金。", True),
    ("How does Wenzhou fund tech firms?", "It promotes the tech-innovation index loan.\n原文：推廣應用“科創指數貸”", True),
    ("How does Wenzhou fund tech firms?", "\n\nIt promotes the loan.\n原文：推廣應用“科創指數貸”", True),
    ("How does Wenzhou fund tech firms?", "推广应用科创指数贷。\nIn English: the index loan.", False),
    ("How does Wenzhou fund tech firms?", "", None),
    ("How does Wenzhou fund tech firms?", None, None),
])
def test_script_match(question, answer, expected):
    row = make_row("s", question=question, answer=answer)
    assert judge(row).script_match is expected


def test_error_rows_are_retrieval_misses_and_counted_apart():
    ok = make_row("a", gold=["顾威"], ranking=["顾威"], answer="顾威。", timings={"retrieve": 5.0, "answer": 1.0, "total": 6.0})
    bad = make_row("b", gold=["顾威"], ranking=[], error="InputError: too long", timings={})
    m = summarize([ok, bad])
    assert v(m, "retrieval.hit@1") == 0.5
    assert v(m, "errors.count") == 1 and v(m, "errors.rate") == 0.5
    assert n(m, "answer.must_not_violation_rate") == 1  # the error row has no answer
    assert v(m, "latency_ms.total.p50") == 6.0 and n(m, "latency_ms.total.p50") == 1
    assert m["error_ids"] == ["b"]


def test_latency_percentiles_match_numpy():
    totals = [3.0, 9.0, 1.0, 7.0, 5.0, 100.0]
    rows = [make_row(str(i), timings={"retrieve": t, "answer": 0.0, "total": t}) for i, t in enumerate(totals)]
    m = summarize(rows)
    assert v(m, "latency_ms.total.p50") == pytest.approx(np.percentile(totals, 50))
    assert v(m, "latency_ms.total.p95") == pytest.approx(np.percentile(totals, 95))
    lo, hi = lookup(m, "latency_ms.total.p50")["ci95"]
    assert min(totals) <= lo <= v(m, "latency_ms.total.p50") <= hi <= max(totals)


def test_by_category_scores_each_category_alone():
    rows = [make_row("a", category="fact", gold=["顾威"], ranking=["顾威"]),
            make_row("b", category="paraphrase", gold=["顾威"], ranking=[FILLER])]
    m = summarize(rows)
    assert set(m["by_category"]) == {"fact", "paraphrase"}
    assert v(m["by_category"]["fact"], "retrieval.hit@1") == 1.0
    assert v(m["by_category"]["paraphrase"], "retrieval.hit@1") == 0.0
    assert m["by_category"]["fact"]["counts"]["items"] == 1


def test_bootstrap_interval_is_deterministic_and_sane():
    num = np.array([1.0] * 50 + [0.0] * 50)
    den = np.ones(100)
    s = bootstrap("ratio", num, den)
    assert s.value == 0.5 and s.n == 100
    lo, hi = s.ci95
    assert 0.35 < lo < 0.5 < hi < 0.65  # about ±1.96 * 0.05
    assert bootstrap("ratio", num, den) == s  # fixed seed
    assert bootstrap("ratio", np.ones(10), np.ones(10)).ci95 == (1.0, 1.0)
    empty = bootstrap("ratio", np.zeros(3), np.zeros(3))
    assert math.isnan(empty.value) and empty.n == 0
    assert empty.to_json() == {"value": None, "ci95": [None, None], "n": 0}


def test_paired_delta_interval():
    den = np.ones(60)
    a = (np.array([1.0] * 30 + [0.0] * 30), den)
    same, ci = paired_delta("ratio", a, a)
    assert same == 0.0 and ci == (0.0, 0.0)
    b = (np.array([1.0] * 50 + [0.0] * 10), den)  # 20 items fixed, none broken
    delta, (lo, hi) = paired_delta("ratio", a, b)
    assert delta == pytest.approx(20 / 60)
    assert 0 < lo < delta < hi
    with pytest.raises(ValueError):
        paired_delta("ratio", a, (np.ones(3), np.ones(3)))


def test_worst_failures_are_ordered_by_severity():
    rows = [make_row("ok", gold=["顾威"], ranking=["顾威"]),
            make_row("miss", gold=["顾威"], ranking=[FILLER]),
            make_row("err", gold=["顾威"], error="RuntimeError: boom"),
            make_row("invent", answerable=False, must_not=["一万亿"], answer="一万亿。")]
    picked = worst([judge(r) for r in rows])
    assert [vd.id for vd, _ in picked] == ["err", "invent", "miss"]
    assert any("forbidden" in d for d in picked[1][1]) and any("should decline" in d for d in picked[1][1])


def test_every_metric_has_a_direction_and_the_verdict_is_json():
    assert all(m.better in ("higher", "lower") for m in METRICS)
    assert isinstance(judge(answer_rows()[0]), Verdict)
    from dataclasses import asdict

    json.dumps(asdict(judge(answer_rows()[0])), ensure_ascii=False)


def test_check_thresholds():
    m = summarize([make_row("a", gold=["顾威"], ranking=[FILLER, "顾威"]),
                   make_row("b", gold=["顾威"], ranking=["顾威"], error="x")])
    assert v(m, "retrieval.hit@1") == 0.0
    assert check_thresholds(m, {"_comment": "x", "retrieval.hit@3": 0.5, "answer.must_include_recall": None}) == []
    fails = check_thresholds(m, {"retrieval.hit@1": 0.1, "answer.citation_precision": 0.5, "errors.rate": 0.0,
                                 "retrieval.hit@2": 0.5})
    assert len(fails) == 4
    assert "below the minimum" in fails[0] and "n/a" in fails[1] and "above the maximum" in fails[2]
    assert "unknown metric" in fails[3]


# --- outside-set metrics: doc_hit@1, contains_answer, length_chars, by_voice, the passage baseline ---------------


def ranked_row(id: str, docs, *, doc_id=None, answers=(), voice=None, explicit_doc_field=False, **kwargs):
    """A make_row row whose ranking comes from the named documents (best first), with the item's doc_id,
    answers_any and voice; hits carry a parseable chunk id ("doc:start-end:hash") unless told otherwise."""
    texts = kwargs.pop("ranking", None) or [f"{FILLER}{i}" for i in range(len(docs))]
    row = make_row(id, ranking=texts, **kwargs)
    for hit, doc in zip(row["ranking"], docs):
        if explicit_doc_field:
            hit["chunk_id"], hit["doc_id"] = f"chunk{hit['rank']}", doc
        else:
            hit["chunk_id"] = f"{doc}:{hit['rank'] * 10}-{hit['rank'] * 10 + 9}:0a1b2c3d"
    row["hits"] = row["ranking"][:5]
    if doc_id is not None:
        row["item"]["doc_id"] = doc_id
    if answers:
        row["item"]["answers_any"] = list(answers)
    if voice is not None:
        row["item"]["voice"] = voice
    return row


def test_doc_hit_at_1_counts_items_with_a_doc_id():
    rows = [
        ranked_row("top", ["harbor", "reading"], doc_id="harbor"),  # doc read off the chunk id
        ranked_row("field", ["reading", "harbor"], doc_id="reading", explicit_doc_field=True),  # a doc_id field
        ranked_row("second", ["reading", "harbor"], doc_id="harbor"),  # right document only at rank 2: a miss
        ranked_row("empty", [], doc_id="harbor"),  # nothing retrieved: a miss
        ranked_row("none", ["harbor"]),  # the item names no document: not counted
        ranked_row("err", ["harbor"], doc_id="harbor", error="RuntimeError: boom"),  # an error is a miss, as for hit@k
    ]
    assert [judge(r).doc_hit1 for r in rows[:5]] == [True, True, False, False, None]
    m = summarize(rows)
    assert v(m, "retrieval.doc_hit@1") == pytest.approx(2 / 5)
    assert n(m, "retrieval.doc_hit@1") == 5
    # the sets without doc ids score it n/a, never 0
    assert math.isnan(v(summarize([rows[4]]), "retrieval.doc_hit@1"))


def test_contains_answer_ignores_markers_edge_punctuation_and_script():
    cases = [
        # the span is split by a citation marker in the answer
        (ranked_row("marker", ["d"], answers=["3000万元"], answer="专项资金为3000万[2]元。"), True),
        # punctuation at the span's ends is ignored (quotes, a full stop)
        (ranked_row("edges", ["d"], answers=["“绿港贷”。"], answer="推广绿港贷，提供低息贷款[1]"), True),
        # a Traditional span matches a Simplified answer; the second span counts when the first is absent
        (ranked_row("script", ["d"], answers=["九十天", "城市書房"], answer="新建城市书房12家。"), True),
        (ranked_row("wrong", ["d"], answers=["42个"], answer="建成岸电泊位40个[1]。"), False),
        # a refusal is a miss, even when its text quotes the span
        (ranked_row("refused", ["d"], answers=["42个"], answer="文中没有说明，只提到建成岸电泊位42个[1]。",
                    refused=True), False),
    ]
    for row, expected in cases:
        assert judge(row).contains_answer is expected, row["id"]
    m = summarize([r for r, _ in cases])
    assert v(m, "answer.contains_answer") == pytest.approx(3 / 5) and n(m, "answer.contains_answer") == 5


def test_contains_answer_is_not_counted_without_spans_or_without_an_answer():
    no_answer = ranked_row("silent", ["d"], answers=["42个"])  # no engine answered: counted nowhere
    no_spans = ranked_row("plain", ["d"], answer="建成岸电泊位42个。")
    only_punct = ranked_row("punct", ["d"], answers=["。"], answer="。")  # a span of punctuation alone is no span
    assert judge(no_answer).contains_answer is False and judge(no_spans).contains_answer is None
    assert judge(only_punct).contains_answer is None
    m = summarize([no_answer, no_spans, only_punct])
    assert math.isnan(v(m, "answer.contains_answer")) and n(m, "answer.contains_answer") == 0


def test_length_chars_is_the_mean_length_of_answers_given():
    rows = [make_row("a", answer="一二三"), make_row("b", answer="abcdefg[1]"),  # markers count as characters
            make_row("refused", answer="文中没有说明这个数字。", refused=True),  # a refusal has no length
            make_row("none"), make_row("empty", answer=""),
            make_row("err", answer="一二三四五六七八九十", error="RuntimeError: boom")]
    assert [judge(r).answer_chars for r in rows] == [3, 10, None, None, None, None]
    m = summarize(rows)
    assert v(m, "answer.length_chars") == pytest.approx(6.5) and n(m, "answer.length_chars") == 2
    assert BY_KEY["answer.length_chars"].better == "lower" and not BY_KEY["answer.length_chars"].gated


def test_by_voice_scores_each_voice_alone():
    rows = [ranked_row("a", ["d"], voice="citizen", gold=["岸电泊位"], ranking=["建成岸电泊位42个"]),
            ranked_row("b", ["d"], voice="citizen", gold=["岸电泊位"], ranking=[FILLER]),
            ranked_row("c", ["d"], voice="journalist", gold=["岸电泊位"], ranking=["岸电泊位"]),
            ranked_row("d", ["d"], gold=["岸电泊位"], ranking=[FILLER])]  # no voice: in the totals only
    m = summarize(rows)
    assert set(m["by_voice"]) == {"citizen", "journalist"}
    assert v(m["by_voice"]["citizen"], "retrieval.hit@1") == 0.5
    assert m["by_voice"]["citizen"]["counts"]["items"] == 2
    assert v(m["by_voice"]["journalist"], "retrieval.hit@1") == 1.0
    assert v(m, "retrieval.hit@1") == 0.5
    assert judge(rows[0]).voice == "citizen" and judge(rows[3]).voice == ""
    assert "by_voice" not in summarize([rows[3]])  # a set without voices has no by_voice block


def test_passage_baseline_quotes_the_top_hit_and_never_refuses():
    row = ranked_row("r", ["harbor", "reading"], answerable=False, answer="文中没有说明。", refused=True,
                     ranking=["新区建成岸电泊位42个。", "新建城市书房12家。"],
                     citations=[("新建城市书房12家。", "新建城市书房12家。")])
    for hit in row["hits"]:
        hit.update(doc_id=hit["chunk_id"].split(":")[0], paragraph=1, start=hit["rank"] * 10,
                   end=hit["rank"] * 10 + 9)
    before = json.dumps(row, ensure_ascii=False, sort_keys=True)
    base = passage_baseline(row)
    assert json.dumps(row, ensure_ascii=False, sort_keys=True) == before  # the engine's row is left alone
    assert base["refused"] is False and base["engine"] == "passage"
    assert base["answer"] == "新区建成岸电泊位42个。"
    top = row["hits"][0]
    assert base["citations"] == [{"n": 1, "chunk_id": top["chunk_id"], "doc_id": "harbor", "paragraph": 1,
                                  "start": 10, "end": 19, "text": top["text"], "quote": top["text"]}]
    assert base["item"] == row["item"] and base["ranking"] == row["ranking"]
    # an error row or one without hits has no answer to quote: it is not answered, still not refused
    for empty in (passage_baseline({**row, "error": "RuntimeError: boom"}), passage_baseline({**row, "hits": []})):
        assert empty["answer"] is None and empty["citations"] == [] and empty["refused"] is False


def test_passage_baseline_scores_as_a_system_that_never_declines():
    answerable = ranked_row("yes", ["harbor"], gold=["岸电泊位42个"], answers=["42个"], must_include=["42个"],
                            ranking=["新区建成岸电泊位42个。"], answer="文中没有说明。", refused=True)
    unanswerable = ranked_row("no", ["harbor"], answerable=False, ranking=["新区建成岸电泊位42个。"],
                              answer="文中没有说明。", refused=True)
    engine = summarize([answerable, unanswerable])
    base = summarize([passage_baseline(r) for r in (answerable, unanswerable)])
    assert v(engine, "answer.refusal_accuracy") == 1.0 and v(engine, "answer.false_refusal_rate") == 1.0
    assert v(base, "answer.refusal_accuracy") == 0.0 and v(base, "answer.false_refusal_rate") == 0.0
    assert v(engine, "answer.contains_answer") == 0.0 and v(base, "answer.contains_answer") == 1.0
    assert v(base, "answer.must_include_recall") == 1.0 and v(base, "answer.citation_precision") == 1.0
    assert v(base, "answer.length_chars") == len("新区建成岸电泊位42个。")
