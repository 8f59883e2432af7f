"""Fitted models stored as small JSON files (no pickle), written by `python -m eval.fit` and only read here.

Two kinds:
- "lightgbm": gradient-boosted trees (LightGBM's own text format, inside the JSON), whose raw score a fitted
  logistic calibration turns into a probability;
- "logistic": a logistic regression's standardisation, coefficients and intercept.
Each file also holds the feature names it was fitted on (checked against the code), the thresholds chosen with it
(`params`) and its provenance.
"""
from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from .errors import SettingsError
from .settings import ROOT

FITTED = ROOT / "config" / "fitted"


class Model(Protocol):
    features: tuple[str, ...]
    params: Mapping[str, Any]

    def proba(self, x: np.ndarray) -> np.ndarray: ...


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@dataclass(frozen=True)
class LogisticModel:
    """P(y=1 | x) = sigmoid(coef · (x - mean) / scale + intercept)."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def proba(self, x: np.ndarray) -> np.ndarray:
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return _sigmoid(((x - self.mean) / self.scale) @ self.coef + self.intercept)

    def to_json(self, **extra: Any) -> dict:
        return {"kind": "logistic", "features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(), "intercept": float(self.intercept),
                "params": dict(self.params), **extra}


class TreeModel:
    """LightGBM trees (ranker or classifier) with a logistic calibration of their raw score."""

    def __init__(self, features: Sequence[str], model_text: str, a: float, b: float,
                 params: Mapping[str, Any] | None = None) -> None:
        self.features = tuple(features)
        self.model_text = model_text
        self.a, self.b = float(a), float(b)
        self.params = dict(params or {})
        self._booster = None
        self._lock = threading.Lock()

    def raw(self, x: np.ndarray) -> np.ndarray:
        if self._booster is None:
            with self._lock:
                if self._booster is None:
                    import lightgbm

                    self._booster = lightgbm.Booster(model_str=self.model_text)
        return np.asarray(self._booster.predict(np.atleast_2d(np.asarray(x, dtype=np.float64)), raw_score=True))

    def proba(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(self.a * self.raw(x) + self.b)

    def to_json(self, **extra: Any) -> dict:
        return {"kind": "lightgbm", "features": list(self.features), "calibration": {"a": self.a, "b": self.b},
                "params": dict(self.params), **extra, "model": self.model_text}


def model_from_json(data: Mapping, expected: Sequence[str], where: str) -> Model:
    """A model from its JSON; SettingsError when it was fitted on other features than the code computes."""
    if list(data.get("features") or []) != list(expected):
        raise SettingsError(f"fitted model {where} does not match this code's features; refit it with "
                            "`python -m eval.fit`")
    kind = data.get("kind")
    if kind == "lightgbm":
        cal = data.get("calibration") or {}
        if not isinstance(data.get("model"), str) or "a" not in cal:
            raise SettingsError(f"fitted model {where} is malformed; refit it with `python -m eval.fit`")
        return TreeModel(expected, data["model"], cal["a"], cal.get("b", 0.0), data.get("params"))
    if kind == "logistic":
        arr = {k: np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "coef")}
        if any(a.shape != (len(expected),) for a in arr.values()):
            raise SettingsError(f"fitted model {where} is malformed; refit it with `python -m eval.fit`")
        return LogisticModel(tuple(expected), arr["mean"], np.where(arr["scale"] > 0, arr["scale"], 1.0),
                             arr["coef"], float(data["intercept"]), dict(data.get("params") or {}))
    raise SettingsError(f"fitted model {where} has unknown kind {kind!r}; refit it with `python -m eval.fit`")


@functools.lru_cache(maxsize=8)
def load_model(name: str, expected: tuple[str, ...], folder: str = str(FITTED)) -> Model:
    """<folder>/<name>.json (config/fitted by default), checked against the features the code computes."""
    path = Path(folder) / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"fitted model {path} is missing or unreadable ({exc}); refit it with "
                            "`python -m eval.fit`") from None
    return model_from_json(data, expected, str(path))
