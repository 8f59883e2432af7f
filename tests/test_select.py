"""Candidate features, the fitted scorer and the selection thresholds (rag.select), and what a colon announces."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import make_settings
from rag import select


def test_every_candidate_of_the_pool_gets_every_feature(pipeline):
    q = pipeline.analyse("科创指数贷要怎么推广")
    hits = pipeline.retrieve(q, 5)
    cands = select.candidates(q, hits, pipeline.units, pipeline.queries.embed_query(q.query), 3)
    pool = {c.chunk.id for c in cands}
    assert pool <= {h.chunk.id for h in hits[:3]} and len(pool) == 3
    assert all(len(c.x) == len(select.FEATURES) and all(np.isfinite(c.x)) for c in cands)
    best = max(cands, key=lambda c: c.x[select.FEATURES.index("lex_own")])
    assert "科创指数贷" in pipeline.units.units[best.unit].norm


def test_the_fitted_scorer_ranks_the_unit_that_names_the_asked_thing_first(pipeline):
    q = pipeline.analyse("瓯江实验室在实验室体系里处在什么位置")
    ranked = pipeline.rank(q, pipeline.retrieve(q, 5))
    assert all(0.0 <= c.p <= 1.0 for c in ranked) and ranked == sorted(ranked, key=lambda c: -c.p)
    assert "瓯江实验室" in pipeline.units.units[ranked[0].unit].norm


def test_pick_keeps_the_best_then_what_clears_the_thresholds_then_runs():
    p, units, chunks = [0.9, 0.8, 0.3, 0.7], [10, 30, 11, 12], ["a", "b", "a", "a"]
    strict = {"t_abs": 0.95, "r_rel": 1.0, "t_next": 1.01}
    assert select.pick(p, units, chunks, strict, max_n=3) == [0]  # only the best
    loose = {"t_abs": 0.5, "r_rel": 0.5, "t_next": 1.01}
    assert select.pick(p, units, chunks, loose, max_n=3) == [0, 3, 1]  # document order: units 10, 12, 30
    assert select.pick(p, units, chunks, loose, max_n=1) == [0]  # max_answer_sentences bounds them
    runs = {"t_abs": 0.95, "r_rel": 1.0, "t_next": 0.2}
    assert select.pick(p, units, chunks, runs, max_n=3) == [0, 2, 3]  # 10 → 11 → 12 in the same passage
    assert select.pick(p, units, chunks, runs, max_n=3, exclude=frozenset({11})) == [0]  # a run stops at a gap


def test_choose_leaves_out_what_was_already_said(pipeline):
    q = pipeline.analyse("人才方面有哪些举措")
    ranked = pipeline.rank(q, pipeline.retrieve(q, 5))
    first = select.choose(ranked, pipeline.units, select.scorer(), 3)
    again = select.choose(ranked, pipeline.units, select.scorer(), 3, exclude=frozenset(c.unit for c in first))
    assert again and not {c.unit for c in first} & {c.unit for c in again}


def test_a_colon_brings_what_it_announces(tmp_path):
    from rag.pipeline import Pipeline

    corpus = tmp_path / "doc.txt"
    corpus.write_text("某市二〇二四年工作安排\n今年我们先做好调查研究。\n今年的工作重点主要是三件事：\n建设东区新城，"
                      "发展西区港口，培育北区产业。\n其他工作照常推进。\n", encoding="utf-8")
    pipe = Pipeline.from_settings(make_settings(tmp_path / "index", corpus_dir=corpus))
    a = pipe.ask("今年的工作重点主要是哪些")
    assert not a.refused
    for item in ("东区新城", "西区港口", "北区产业"):
        assert item in a.text


@pytest.mark.parametrize("name", ["select", "answerable"])
def test_the_shipped_models_match_the_features_the_code_computes(name):
    from rag import answerability
    from rag.fitted import load_model

    features = select.FEATURES if name == "select" else answerability.FEATURES
    model = load_model(name, features)
    assert model.params and "_provenance" not in model.params
    p = model.proba(np.zeros((2, len(features))))
    assert p.shape == (2,) and np.all((0 <= p) & (p <= 1))
