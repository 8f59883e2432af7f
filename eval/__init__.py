"""Evaluation harness: run the pipeline over a dataset, score it, report, compare runs, calibrate, gate CI.

    python -m eval.run --dataset eval/dataset.jsonl --out eval/runs/latest [--set key=value ...]
    python -m eval.compare DIR_A DIR_B [--tolerance 0.02]
    python -m eval.calibrate --dataset eval/dataset.jsonl [--out-settings config/settings.json]

`eval.metrics` holds the matching rule and every metric's definition.
"""
from rag.errors import RagError


class EvalError(RagError):
    """A dataset, run folder or calibration input is unusable; the message says what to fix."""
