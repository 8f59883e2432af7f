"""The answer-or-refuse decision (rag.answerability): its generic features on the real speech, and the verdict."""
from __future__ import annotations

from rag import answerability


def features(pipeline, text, history=()):
    q = pipeline.analyse(text, list(history))
    hits = pipeline.retrieve(q, 5)
    ranked = pipeline.rank(q, hits)
    x = answerability.features(q, ranked, hits, pipeline.units, pipeline.lexicon)
    assert len(x) == len(answerability.FEATURES)
    return dict(zip(answerability.FEATURES, x)), q, ranked, hits


def test_an_asked_count_is_checked_against_the_enumeration(pipeline):
    eight, *_ = features(pipeline, "八大抓手是哪八个")
    assert eight["count_asked"] == 1 and eight["count_found"] == 1  # the speech lists eight
    five, *_ = features(pipeline, "五大抓手是哪五个")
    assert five["count_asked"] == 1 and five["count_found"] == 0


def test_the_asked_focus_must_be_named_and_listed(pipeline):
    banks, q, *_ = features(pipeline, "科创指数贷由哪些银行发放")
    assert "银行" in q.focus and banks["focus_found"] == 0 and banks["focus_listed"] == 0
    cities, q, *_ = features(pipeline, "科技企业森林培育在哪些城市试点")
    assert "城市" in q.focus and cities["focus_listed"] == 0  # 城市 is named (创新型城市), no city is listed
    systems, q, *_ = features(pipeline, "温州要打造哪些体系")
    assert "体系" in q.focus and systems["focus_found"] == 1 and systems["focus_listed"] == 1


def test_a_figure_counts_only_beside_what_it_is_about(pipeline):
    years, *_ = features(pipeline, "八八战略实施多少周年了")
    assert years["ask_quantity"] == 1 and years["kind_with_topic"] == 1  # “八八战略”实施20周年
    rate, *_ = features(pipeline, "科创指数贷的利率是多少")
    assert rate["ask_quantity"] == 1 and rate["kind_with_topic"] == 0


def test_words_missing_from_the_corpus_are_seen(pipeline):
    known, *_ = features(pipeline, "科企通是什么")
    assert known["cov_corpus"] == 1.0 and known["miss_corpus"] == 0.0
    unknown, *_ = features(pipeline, "科企通和区块链有什么关系")
    assert unknown["cov_corpus"] < 1.0 and unknown["miss_corpus"] > 0.5


def test_the_verdict_names_the_topic_and_what_is_asked(pipeline):
    _, q, ranked, hits = features(pipeline, "科创基金的规模有多大")
    v = answerability.decide(q, ranked, hits, pipeline.units, pipeline.lexicon, answerability.model())
    assert not v.answerable and not v.off_topic and v.topic == "科创基金" and v.asks_for == "quantity"
    assert 0.0 <= v.score <= 1.0 and "threshold" in v.reason
    _, q, ranked, hits = features(pipeline, "怎么做红烧肉好吃")
    v = answerability.decide(q, ranked, hits, pipeline.units, pipeline.lexicon, answerability.model())
    assert not v.answerable and v.off_topic and v.topic == ""
    # the threshold given overrides the fitted one
    _, q, ranked, hits = features(pipeline, "科企通是什么")
    model = answerability.model()
    assert answerability.decide(q, ranked, hits, pipeline.units, pipeline.lexicon, model).answerable
    assert not answerability.decide(q, ranked, hits, pipeline.units, pipeline.lexicon, model, threshold=1.0).answerable


def test_a_follow_up_is_never_off_topic_for_want_of_its_own_words(pipeline):
    history = [["科创基金要怎么发展？", "根据讲话，做大做强科创基金[1]。"]]
    _, q, ranked, hits = features(pipeline, "那它呢？", history)
    v = answerability.decide(q, ranked, hits, pipeline.units, pipeline.lexicon, answerability.model())
    assert q.refers_back and not v.off_topic
