"""Settings: defaults, file, environment and overrides, validated at the door."""
from __future__ import annotations

import json

import pytest

from rag.errors import SettingsError
from rag.settings import Settings, build_settings, parse_overrides


def test_precedence(tmp_path):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"top_k": 7, "fusion": "rrf", "_note": "ignored"}))
    s = build_settings(file=f, env={"RAG_TOP_K": "9", "RAG_DENSE_WEIGHT": "0.3"}, overrides={"fusion": "dense"})
    assert (s.top_k, s.fusion, s.dense_weight) == (9, "dense", 0.3)
    assert build_settings(file=f, env={}).top_k == 7


def test_types_are_coerced(tmp_path):
    s = build_settings(env={"RAG_EMBED_HEADING": "yes", "RAG_RERANKER_MODEL": "none", "RAG_INDEX_DIR": "x/y"})
    assert s.embed_heading is True and s.reranker_model is None and s.index_dir.is_absolute()


@pytest.mark.parametrize("key,value,needle", [
    ("top_k", "0", "top_k"), ("fusion", "magic", "fusion"), ("dense_weight", "1.5", "dense_weight"),
    ("embedding_backend", "gpu", "embedding_backend"), ("top_k", "many", "not a valid"),
    ("candidate_k", "2", "candidate_k"), ("rate_limit", "-1", "rate_limit"),
])
def test_bad_values_fail_with_the_fix(key, value, needle):
    with pytest.raises(SettingsError, match=needle):
        build_settings(env={}, overrides={key: value})


def test_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(SettingsError, match="unreadable"):
        build_settings(file=bad, env={})
    bad.write_text(json.dumps({"nope": 1}))
    with pytest.raises(SettingsError, match="unknown key"):
        build_settings(file=bad, env={})
    with pytest.raises(SettingsError, match="does not exist"):
        build_settings(file=tmp_path / "missing.json", env={})


def test_parse_overrides_and_fingerprint():
    assert parse_overrides(["top_k=3", "llm_base_url=http://x/v1?a=b"]) == {"top_k": "3", "llm_base_url": "http://x/v1?a=b"}
    with pytest.raises(SettingsError):
        parse_overrides(["top_k"])
    a = build_settings(env={})
    assert a.fingerprint() == build_settings(env={}).fingerprint() != a.replace(top_k=6).fingerprint()
    assert isinstance(a, Settings) and a.replace(top_k=6).top_k == 6
