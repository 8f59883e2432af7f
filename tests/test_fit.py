"""eval.fit end to end on a small slice (the first 30 questions of eval/dataset.jsonl): the two fitted models are
written as JSON that rag.fitted loads, checked against the features the code computes."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from rag import answerability, select
from rag.errors import SettingsError
from rag.fitted import FITTED, load_model, model_from_json
from rag.settings import ROOT

MODELS = {"select": select.FEATURES, "answerable": answerability.FEATURES}
LIMIT = 30


def shipped() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(FITTED.glob("*.json"))}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    """One quick fit into a temporary folder, its index built there too."""
    from eval import fit

    out = tmp_path_factory.mktemp("fitted")
    before = shipped()
    assert fit.main(["--sources", "speech/dataset", "--limit", str(LIMIT), "--index-root", str(out),
                     "--out", str(out)]) == 0
    assert shipped() == before, "a fit with --out elsewhere must leave config/fitted alone"
    return out


def test_fit_writes_both_models_and_builds_its_index_under_index_root(fitted):
    assert (fitted / "select.json").is_file() and (fitted / "answerable.json").is_file()
    manifest = json.loads((fitted / "speech-dataset" / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest["documents"]) == ["wenzhou-2023-sci-tech-plan"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fitted_models_load_and_give_probabilities(fitted, name):
    features = MODELS[name]
    model = load_model(name, features, str(fitted))
    assert model.features == tuple(features)
    rng = np.random.default_rng(0)
    x = np.vstack([np.zeros(len(features)), np.ones(len(features)), rng.normal(0, 3, (40, len(features)))])
    p = np.asarray(model.proba(x), dtype=float)
    assert p.shape == (42,)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    raw = np.asarray(model.raw(x), dtype=float)
    cal = json.loads((fitted / f"{name}.json").read_text(encoding="utf-8"))["calibration"]
    assert p == pytest.approx(1 / (1 + np.exp(-(cal["a"] * raw + cal["b"]))))  # the stored calibration applied
    if name == "select":  # hundreds of candidate rows: the ranker has splits (30 questions may not give the other any)
        assert np.ptp(p) > 0, "a fitted ranker that gives every row the same probability learned nothing"


def test_fitted_files_record_their_thresholds_and_provenance(fitted):
    sel = json.loads((fitted / "select.json").read_text(encoding="utf-8"))
    ans = json.loads((fitted / "answerable.json").read_text(encoding="utf-8"))
    assert sel["kind"] == ans["kind"] == "lightgbm"
    assert {"t_abs", "r_rel", "t_next", "oof_auc", "oof_top1"} <= set(sel["params"])
    assert 0.0 < ans["params"]["threshold"] < 1.0
    for data in (sel, ans):
        prov = data["_provenance"]
        assert prov["command"].startswith("python -m eval.fit --sources speech/dataset")
        [source] = prov["sources"]
        assert source["name"] == "speech/dataset" and source["dataset"] == "eval/dataset.jsonl"
        assert source["questions"] <= LIMIT and source["questions"] >= LIMIT - 5  # injection-only ones are dropped
        assert source["sha256"] == hashlib.sha256((ROOT / "eval" / "dataset.jsonl").read_bytes()).hexdigest()
        auc = data["params"]["oof_auc"]
        assert auc is None or math.isnan(auc) or 0.0 <= auc <= 1.0


@pytest.mark.parametrize("change", ["renamed", "dropped", "reordered"])
def test_a_model_fitted_on_other_features_is_refused(fitted, tmp_path, change):
    data = json.loads((fitted / "select.json").read_text(encoding="utf-8"))
    features = list(data["features"])
    if change == "renamed":
        features[0] = features[0] + "_old"
    elif change == "dropped":
        features = features[:-1]
    else:
        features[0], features[1] = features[1], features[0]
    (tmp_path / "select.json").write_text(json.dumps({**data, "features": features}), encoding="utf-8")
    with pytest.raises(SettingsError, match="does not match this code's features"):
        load_model("select", select.FEATURES, str(tmp_path))
    with pytest.raises(SettingsError, match="eval.fit"):
        model_from_json({**data, "features": features}, select.FEATURES, "select.json")


def test_a_missing_or_malformed_model_is_a_settings_error(fitted, tmp_path):
    with pytest.raises(SettingsError, match="missing or unreadable"):
        load_model("answerable", answerability.FEATURES, str(tmp_path))
    data = json.loads((fitted / "answerable.json").read_text(encoding="utf-8"))
    del data["model"]
    with pytest.raises(SettingsError, match="malformed"):
        model_from_json(data, answerability.FEATURES, "answerable.json")
