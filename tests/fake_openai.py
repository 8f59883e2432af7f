"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire format, scripted per test.

    def test_x(fake_openai):
        fake_openai.reply = "讲话提到要推广应用“科创指数贷”[1]。"   # or a callable(messages) -> str
        fake_openai.mode = "ok"        # ok | http500 | slow | trickle | garbage | empty
        settings = ...replace(llm_base_url=fake_openai.url)
        ...
        assert fake_openai.requests[0]["messages"][0]["role"] == "system"

Modes:
- ok:      the reply, as one JSON body or (stream: true) as several `chat.completion.chunk` events and `[DONE]`.
- http500: status 500 with an OpenAI-style error body.
- slow:    waits `slow_s` seconds (default 3, longer than a 1 s client timeout) before answering normally.
- trickle: keeps the connection busy: a streamed token (or, without streaming, one byte of leading JSON
           whitespace) every `trickle_interval_s` (0.5 s), for at most `trickle_max_s` (60 s), then the answer.
- garbage: status 200 with a body that is not JSON (and not server-sent events).
- empty:   a well-formed answer whose content is "".

Only ever binds 127.0.0.1; every wait ends when the server stops.
"""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest

MODES = ("ok", "http500", "slow", "trickle", "garbage", "empty")
HOST = "127.0.0.1"


def split_pieces(text: str) -> list[str]:
    """Stream pieces: an English word with its leading space, or up to two CJK/other characters."""
    pieces = re.findall(r"\s*[A-Za-z0-9%.,'’-]+|\s*\[\d+\]|\s*[^\sA-Za-z0-9]{1,2}|\s+", text)
    assert "".join(pieces) == text, "split_pieces must not lose characters"
    return pieces


class FakeOpenAI:
    """The scriptable state of one fake endpoint; the handler reads it on every request."""

    def __init__(self) -> None:
        self.reply: str | Callable[[list[dict[str, Any]]], str] = "讲话提到要推广应用“科创指数贷”[1]。"
        self.mode = "ok"
        self.slow_s = 3.0
        self.trickle_interval_s = 0.5
        self.trickle_max_s = 60.0
        self.requests: list[dict[str, Any]] = []  # JSON bodies received, in order
        self.headers: list[dict[str, str]] = []  # their HTTP headers, lower-cased names
        self.paths: list[str] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "call start() first"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL for an OpenAI client, ending in /v1."""
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> "FakeOpenAI":
        """Listen on a free port of 127.0.0.1 in a daemon thread."""
        fake = self

        class Handler(_Handler):
            state = fake

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and end every pending wait (slow and trickle handlers return at once)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def answer_for(self, messages: list[dict[str, Any]]) -> str:
        if self.mode == "empty":
            return ""
        return self.reply(messages) if callable(self.reply) else str(self.reply)

    def wait(self, seconds: float) -> bool:
        """Sleep unless the server stops first; True when it stopped."""
        return self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    state: FakeOpenAI
    protocol_version = "HTTP/1.0"  # one request per connection; a streamed body ends when the connection closes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep pytest output clean
        pass

    def _send_json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._send_json(404, {"error": {"message": f"no route GET {self.path}", "type": "invalid_request_error"}})

    def do_POST(self) -> None:  # noqa: N802
        fake = self.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        fake.paths.append(self.path)
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send_json(404, {"error": {"message": f"no route POST {self.path}", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON", "type": "invalid_request_error"}})
            return
        fake.requests.append(body)
        fake.headers.append({k.lower(): v for k, v in self.headers.items()})
        try:
            self._answer(fake, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its deadline passed): nothing more to send

    def _answer(self, fake: FakeOpenAI, body: dict[str, Any]) -> None:
        mode = fake.mode
        if mode not in MODES:
            self._send_json(400, {"error": {"message": f"fake mode {mode!r} unknown; use one of {MODES}"}})
            return
        if mode == "http500":
            self._send_json(500, {"error": {"message": "the fake server failed on purpose", "type": "server_error"}})
            return
        if mode == "garbage":
            data = b"<html><body>502 Bad Gateway \xe7\xbd\x91\xe5\x85\xb3</body></html>\n{not json"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if mode == "slow" and fake.wait(fake.slow_s):
            return
        model = body.get("model", "fake-model")
        text = fake.answer_for(body.get("messages", []))
        ident = f"chatcmpl-fake{len(fake.requests)}"
        created = int(time.time())
        if body.get("stream"):
            self._stream(fake, ident, created, model, text, trickle=mode == "trickle")
            return
        completion = {
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": len(text), "total_tokens": 10 + len(text)},
        }
        if mode != "trickle":
            self._send_json(200, completion)
            return
        # Leading whitespace is valid JSON: the body stays incomplete while bytes keep arriving.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        started = time.monotonic()
        while time.monotonic() - started < fake.trickle_max_s:
            self.wfile.write(b" ")
            self.wfile.flush()
            if fake.wait(fake.trickle_interval_s):
                return
        self.wfile.write(json.dumps(completion, ensure_ascii=False).encode("utf-8"))

    def _stream(self, fake: FakeOpenAI, ident: str, created: int, model: str, text: str, *, trickle: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()

        def event(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            self.wfile.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode("utf-8") + b"\n\n")
            self.wfile.flush()

        event({"role": "assistant", "content": ""})
        if trickle:
            started = time.monotonic()
            while time.monotonic() - started < fake.trickle_max_s:
                event({"content": "科创"})
                if fake.wait(fake.trickle_interval_s):
                    return
        else:
            for piece in split_pieces(text):
                event({"content": piece})
        event({}, "stop")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@pytest.fixture
def fake_openai():
    """A started FakeOpenAI (mode "ok"), stopped after the test."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()
