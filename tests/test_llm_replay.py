"""Real replies of a real small model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M behind llama.cpp's OpenAI-compatible
server), recorded on the team's own development questions with `python -m eval.record_llm`, replayed through the
fake OpenAI-wire server: verification must decide what was audited for each — accepted, cited, dropped, or
fallback with its reason."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.pipeline import Pipeline

RECORDED = Path(__file__).parent / "data" / "llm_replies.jsonl"
ROWS = [json.loads(line) for line in RECORDED.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def replay_pipeline(session_settings):
    from fake_openai import FakeOpenAI

    fake = FakeOpenAI().start()
    pipe = Pipeline.from_settings(session_settings.replace(answer_engine="openai", llm_base_url=fake.url,
                                                           llm_model="replayed", llm_timeout_s=30))
    yield pipe, fake
    fake.stop()


def test_the_recording_covers_each_decision():
    outcomes = {r["expected"]["outcome"] for r in ROWS}
    actions = {a for r in ROWS for a in r["expected"]["actions"]}
    assert len(ROWS) >= 15 and outcomes == {"accepted", "fallback"}
    assert {"accepted", "cited", "dropped"} <= actions


@pytest.mark.parametrize("row", ROWS, ids=[r["id"] for r in ROWS])
def test_replayed_reply_gets_the_audited_decision(replay_pipeline, row):
    pipe, fake = replay_pipeline
    fake.mode, fake.reply = "ok", row["reply"]
    answer = pipe.ask(row["question"])
    shown = [line.split("] ", 1)[1] for line in fake.requests[-1]["messages"][-1]["content"].splitlines()
             if line.startswith("[") and "] " in line]
    assert len(shown) == len(row["evidence"])  # the model saw the same numbered passages
    v, expected = answer.verification, row["expected"]
    assert v["outcome"] == expected["outcome"] and v["reason"] == expected["reason"]
    assert [c["action"] for c in v["claims"]] == expected["actions"]
    if expected["outcome"] == "accepted":
        assert answer.engine.startswith("openai") and answer.citations
    else:
        assert answer.engine.startswith("extractive (fallback") and answer.text
