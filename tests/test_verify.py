"""Claim-by-claim verification of an LLM answer (rag.verify), on passages of a real government work report."""
from __future__ import annotations

import pytest

from rag.question import STOP
from rag.verify import Thresholds, claims_of, coverage, load_thresholds, names_not_held, numbers_in, verify

# two passages of the 2013 government work report in data/library, as the model would see them
EVIDENCE = [
    "国内生产总值从26.6万亿元增加到51.9万亿元，跃升到世界第二位。",
    "城镇新增就业5870万人，城镇登记失业率控制在4.6%以内。",
]
STRICT = Thresholds(zh=0.5, en=0.8)


@pytest.fixture(scope="module")
def check(pipeline):
    segment = pipeline.lexicon.segment

    def run(text, question="这几年经济和就业怎么样", english=False, answerable=True, support=None, known=""):
        sup = support or (lambda claim, passage: coverage(claim, passage, segment, STOP))
        return verify(text, EVIDENCE, question_norm=question, english=english, answerable=answerable,
                      support=sup, thresholds=STRICT, segment=segment, stop=STOP, known=known)
    return run


def test_list_numbering_is_no_claim_and_no_figure():
    assert claims_of("1. 第一点。\n2、第二点；（3）第三点") == ["第一点。", "第二点；", "第三点"]
    assert numbers_in("第一，第二，") == set() and numbers_in("1. 经济增长") == {"1"}  # claims_of strips it first


def test_chinese_numerals_before_a_unit_are_figures():
    assert numbers_in("新建三所学校，两次调整，二十个项目，一百零五家企业") == {"3", "2", "20", "105"}
    assert numbers_in("统一思想，一心一意") == set()  # no unit follows: words, not figures


def test_supported_cited_claims_are_accepted(check):
    text, v = check("国内生产总值增加到51.9万亿元[1]。城镇新增就业5870万人[2]。")
    assert v.outcome == "accepted" and [c.action for c in v.claims] == ["accepted", "accepted"]
    assert text == "国内生产总值增加到51.9万亿元[1]。城镇新增就业5870万人[2]。"


def test_an_uncited_claim_is_cited_when_a_passage_supports_it(check):
    text, v = check("城镇登记失业率控制在4.6%以内。")
    assert v.outcome == "accepted" and v.claims[0].action == "cited" and v.claims[0].cites == (2,)
    assert text.endswith("[2]")


def test_an_unsupported_claim_is_dropped_and_alone_means_fallback(check):
    text, v = check("国内生产总值跃升到世界第二位[1]。居民普遍购买了新能源汽车。")
    assert v.outcome == "accepted" and [c.action for c in v.claims] == ["accepted", "dropped"]
    assert "汽车" not in text
    _, v = check("居民普遍购买了新能源汽车。")
    assert v.outcome == "fallback" and "no claim is supported" in v.reason


@pytest.mark.parametrize("text,reason", [
    ("城镇新增就业6000万人[2]。", "states 6000"),
    ("失业率控制在五个百分点以内[2]。", "states 5"),
    ("据“就业优先战略”，城镇新增就业5870万人[2]。", "quotes “就业优先战略”"),
    ("财政部部长王建国宣布城镇新增就业5870万人[2]。", "names 王建国"),
])
def test_a_figure_quote_or_name_its_evidence_lacks_rejects_the_answer(check, text, reason):
    _, v = check(text)
    assert v.outcome == "fallback" and reason in v.reason and v.claims[-1].action == "rejected"


def test_figures_and_names_from_the_question_or_the_byline_are_allowed(check):
    _, v = check("2012年国内生产总值增加到51.9万亿元[1]。", question="2012年经济总量多少")
    assert v.outcome == "accepted"
    _, v = check("温家宝在报告中说，国内生产总值跃升到世界第二位[1]。", known="政府工作报告 温家宝 国务院总理")
    assert v.outcome == "accepted"


def test_silence_on_an_answerable_question_is_overridden(check):
    _, v = check("报告没有提到就业的情况[2]。")
    assert v.outcome == "fallback" and "does not cover" in v.reason
    text, v = check("报告没有提到具体的补贴标准。", answerable=False)
    assert v.outcome == "fallback"  # nothing supported: a statement of silence alone is no answer
    text, v = check("城镇新增就业5870万人[2]。报告没有提到具体的补贴标准。", answerable=False)
    assert v.outcome == "accepted" and [c.action for c in v.claims] == ["accepted", "kept"]


def test_an_answer_that_restates_the_question_is_no_answer(check):
    _, v = check("这几年经济和就业怎么样[1]？")
    assert v.outcome == "fallback" and "restates" in v.reason
    _, v = check("About jobs, the report says [2].", question="whatdoesthereportsayaboutjobs", english=True,
                 support=lambda claim, passage: 0.9)
    assert v.outcome == "fallback" and "restates" in v.reason


def test_romanised_and_chinese_names_in_english_answers_are_checked():
    held = "国务院总理温家宝作政府工作报告"
    assert names_not_held("The report was delivered by Premier Wen Jiabao.", held) == []
    assert names_not_held("The report was delivered by Premier Wen Jiahao.", held) == ["Wen Jiahao"]
    assert names_not_held("It was delivered to the State Council (国务院).", held) == []
    assert names_not_held("It was delivered to the National People's Congress (全国人大常委会).", held) == ["全国人大常委会"]


def test_english_claims_are_verified_by_their_support(check):
    def cosine(claim, passage):  # stands in for the embedder: close for the first claim only
        return 0.9 if "GDP" in claim else 0.3
    text, v = check("GDP rose to 51.9 trillion yuan [1]. Everyone bought electric cars [2].", english=True,
                    support=cosine)
    assert v.outcome == "accepted" and [c.action for c in v.claims] == ["accepted", "dropped"]
    assert "electric" not in text and "51.9" in text
    _, v = check("GDP rose to 99 trillion yuan [1].", english=True, support=lambda claim, passage: 0.95)
    assert v.outcome == "fallback" and "states 99" in v.reason


def test_the_fitted_thresholds_load():
    t = load_thresholds()
    assert 0 < t.zh < 1 and 0 < t.en < 1


def test_one_with_a_measure_word_is_an_article_not_a_figure():
    assert numbers_in("这是一项重要举措，共有三项任务") == {"3"}


def test_a_marker_after_the_full_stop_belongs_to_the_sentence(check):
    assert claims_of("城镇新增就业5870万人。[2] 失业率较低。") == ["城镇新增就业5870万人。[2]", "失业率较低。"]
    text, v = check("城镇新增就业5870万人。[2]")
    assert v.outcome == "accepted" and len(v.claims) == 1 and v.claims[0].cites == (2,)


def test_a_claim_that_negates_what_its_evidence_states_is_dropped(check):
    text, v = check("国内生产总值没有跃升到世界第二位[1]。城镇新增就业5870万人[2]。")
    assert v.outcome == "accepted" and [c.action for c in v.claims] == ["dropped", "accepted"]
    assert "没有" in v.claims[0].reason and "世界第二" not in text


def test_picking_an_option_of_the_question_that_the_evidence_lacks_is_dropped(check):
    question = "失业率是控制住了还是大幅上升了"
    text, v = check("城镇登记失业率大幅上升了[2]。", question=question)
    assert v.outcome == "fallback" and v.claims[0].action == "dropped" and "上升" in v.claims[0].reason
    text, v = check("城镇登记失业率控制在4.6%以内[2]。", question=question)
    assert v.outcome == "accepted"


def test_a_figure_the_question_did_not_give_is_not_a_restatement(check):
    text, v = check("失业率控制在4.6%以内[2]。", question="失业率控制在多少以内")
    assert v.outcome == "accepted"
    text, v = check("失业率控制在一定范围以内[2]。", question="失业率控制在一定范围以内吗")
    assert v.outcome == "fallback" and v.reason == "the answer restates the question"
