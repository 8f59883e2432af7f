"""The load generator against a live local server: the real app when it imports, else a small stand-in."""
from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from bench import load as bench_load


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stand_in_app(pipeline):
    """/api/ask and /api/health over the real pipeline, for when rag.web.api is not importable."""
    import anyio
    from fastapi import FastAPI
    from pydantic import BaseModel

    from rag.serialize import answer_to_dict

    class AskRequest(BaseModel):
        question: str
        history: list[list[str]] = []

    app = FastAPI()

    @app.post("/api/ask")
    async def ask(body: AskRequest):
        answer = await anyio.to_thread.run_sync(lambda: pipeline.ask(body.question, body.history))
        return answer_to_dict(answer)

    @app.get("/api/health")
    async def health():
        return {"status": "ok", "chunks": len(pipeline.index.chunks)}

    return app


def real_app(session_settings, pipeline, tmp_path, rate_limit: int):
    """rag.web.api's app over the session pipeline, or None when the module is not there."""
    try:
        from rag.web.api import create_app
    except ImportError:
        return None
    settings = session_settings.replace(rate_limit=rate_limit, feedback_db=tmp_path / "feedback.sqlite")
    return create_app(settings, pipeline)


def serve(app):
    """Serve an app with uvicorn in a thread on a free 127.0.0.1 port; yields its base URL."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(session_settings, pipeline, tmp_path_factory):
    """The real app without rate limit (the stand-in when rag.web.api is missing)."""
    app = real_app(session_settings, pipeline, tmp_path_factory.mktemp("load"), rate_limit=0)
    yield from serve(app or stand_in_app(pipeline))


@pytest.fixture(scope="module")
def limited_server(session_settings, pipeline, tmp_path_factory):
    """The real app allowing 3 requests a minute per client."""
    app = real_app(session_settings, pipeline, tmp_path_factory.mktemp("load-limited"), rate_limit=3)
    if app is None:
        pytest.skip("rag.web.api is not importable: the stand-in has no rate limit")
    yield from serve(app)


def test_short_load_run(server, tmp_path, capsys):
    out = tmp_path / "load.json"
    code = bench_load.main(["--url", server, "--clients", "2", "--seconds", "2", "--json", str(out),
                            "--pid", str(os.getpid())])
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert set(bench_load.KEYS) <= set(data)
    assert data["requests"] > 0
    assert data["errors"] == 0, data["statuses"]
    assert data["rate_limited"] == 0  # the server runs with rate_limit=0
    assert data["p50_ms"] is not None and data["rss_mb_before"] is not None and data["rss_mb_after"] is not None
    assert "requests" in capsys.readouterr().out


def test_rate_limited_responses_are_counted_apart(limited_server, tmp_path):
    out = tmp_path / "load.json"
    assert bench_load.main(["--url", limited_server, "--clients", "2", "--seconds", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["rate_limited"] > 0 and data["errors"] == 0
    assert data["requests"] == data["ok"] + data["rate_limited"]


def test_without_pid_rss_is_null(server, tmp_path):
    out = tmp_path / "load.json"
    assert bench_load.main(["--url", server, "--clients", "1", "--seconds", "0.5", "--json", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["rss_mb_before"] is None and data["rss_mb_after"] is None and data["requests"] > 0


@pytest.mark.parametrize("url", ["http://example.com:80", "http://localhost:7860", "https://127.0.0.1:7860",
                                 "http://10.0.0.1:7860", "http://127.0.0.1:7860/api/ask"])
def test_refuses_other_hosts(url, capsys):
    assert bench_load.main(["--url", url, "--clients", "1", "--seconds", "1"]) == 2
    err = capsys.readouterr().err
    assert "refusing" in err or "base URL" in err


def test_no_server_is_a_clear_error(capsys):
    assert bench_load.main(["--url", f"http://127.0.0.1:{free_port()}", "--clients", "1", "--seconds", "1"]) == 2
    assert "no server" in capsys.readouterr().err
