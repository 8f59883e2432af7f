"""POST /api/ask/stream: Server-Sent Events for the quoted answer, verified pieces, citations and the final JSON —
over a real socket, so the events are seen as they are sent."""
from __future__ import annotations

import json
import re
import threading

import httpx
import pytest

from fake_openai import fake_openai  # noqa: F401  (fixture)
from rag.pipeline import Pipeline
from rag.web.api import create_app
from test_bench_load import serve


@pytest.fixture()
def url_for(api_settings):
    running = []

    def start(pipeline) -> str:
        running.append(serve(create_app(api_settings, pipeline)))  # yields the URL, stops when resumed
        return next(running[-1])

    yield start
    for server in running:
        next(server, None)


def events_of(url: str, body: dict, on_event=None) -> list[tuple[str, dict]]:
    """The (event, data) pairs of one streamed answer, in order; `on_event` sees each as it arrives."""
    out: list[tuple[str, dict]] = []
    with httpx.stream("POST", f"{url}/api/ask/stream", json=body, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[len("data: "):])))
                if on_event:
                    on_event(*out[-1])
    return out


def test_extractive_stream_gives_the_same_answer_as_ask(url_for, pipeline):
    url = url_for(pipeline)
    body = {"question": "温州怎样支持企业做技术攻关？"}
    events = events_of(url, body)
    names = [n for n, _ in events]
    assert names[-2:] == ["citations", "final"] and "quoted" not in names and "delta" in names
    final = events[-1][1]
    plain = httpx.post(f"{url}/api/ask", json=body, timeout=120).json()
    assert final["answer"] == plain["answer"] == "".join(d["text"] for n, d in events if n == "delta")
    assert events[-2][1]["citations"] == final["citations"] and final["citations"]
    assert final["id"]  # feedback can refer to it
    assert httpx.post(f"{url}/api/feedback", json={"id": final["id"], "rating": "up"}, timeout=30).status_code == 202


def test_the_quoted_answer_does_not_wait_for_the_model(url_for, session_settings, fake_openai):  # noqa: F811
    """The model is held until the client has the quoted answer: if the quoted answer waited on the model, the
    model's reply would come too late for its client and the final answer would be the fallback."""
    quoted_seen = threading.Event()

    def reply(messages):
        quoted_seen.wait(60)
        line = next(l for l in messages[-1]["content"].splitlines() if re.match(r"\[1\] ", l))
        clause = max(re.split(r"[，。；,;]", line[4:]), key=len)
        return f"{clause}[1]。"

    fake_openai.reply = reply
    pipe = Pipeline.from_settings(session_settings.replace(answer_engine="openai", llm_base_url=fake_openai.url,
                                                           llm_model="fake-qwen", llm_timeout_s=20))
    url = url_for(pipe)
    events = events_of(url, {"question": "科技金融方面有什么新产品？"},
                       on_event=lambda name, data: name == "quoted" and quoted_seen.set())
    names = [n for n, _ in events]
    assert names[0] == "quoted" and names[-2:] == ["citations", "final"]
    quoted, final = events[0][1], events[-1][1]
    assert quoted["quoted"] is True and quoted["citations"] and quoted["engine"].startswith("extractive")
    assert final["engine"].startswith("openai"), final["notice"]
    assert final["verification"]["outcome"] == "accepted"
    assert any(n == "delta" for n in names)


def test_a_failing_model_ends_the_stream_with_the_quoted_answer(url_for, session_settings, fake_openai):  # noqa: F811
    fake_openai.mode = "http500"
    pipe = Pipeline.from_settings(session_settings.replace(answer_engine="openai", llm_base_url=fake_openai.url,
                                                           llm_model="fake-qwen", llm_timeout_s=10))
    events = events_of(url_for(pipe), {"question": "科技金融方面有什么新产品？"})
    quoted, final = events[0][1], events[-1][1]
    assert events[0][0] == "quoted" and final["answer"] == quoted["answer"]
    assert final["engine"].startswith("extractive (fallback") and "LLM unavailable" in final["notice"]


@pytest.mark.parametrize("body,status", [({"question": "   "}, 422), ({"question": "问" * 20000}, 413)])
def test_bad_questions_are_refused_before_the_stream(url_for, pipeline, body, status):
    r = httpx.post(f"{url_for(pipeline)}/api/ask/stream", json=body, timeout=60)
    assert r.status_code == status and r.json()["detail"] and r.json()["request_id"] == r.headers["x-request-id"]


def test_warm_up_loads_what_the_first_askers_would_wait_for(session_settings, pipeline):
    """In a fresh process, warming up answers a question and loads the lazily imported tagger and pinyin tables,
    so no user's first question of a kind pays for them."""
    import subprocess
    import sys

    code = ("import sys; from rag.settings import build_settings; from rag.pipeline import Pipeline; "
            "from rag.web.api import warm_up, LAZY_MODULES; "
            f"p = Pipeline.from_settings(build_settings(overrides={{'index_dir': {str(session_settings.index_dir)!r}}}), "
            "rebuild='never'); "
            "assert not any(m in sys.modules for m in LAZY_MODULES); warm_up(p); "
            "print(all(m in sys.modules for m in LAZY_MODULES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("True")
