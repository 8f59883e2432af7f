"""The HTTP API (FastAPI) with the Gradio page mounted at "/": one process, one pipeline, one rate limiter.

Every response carries an X-Request-ID; errors are JSON `{"detail": message, "request_id": id}` with no stack
trace, and the id is in the server log next to the failure so a user can quote it.
"""
from __future__ import annotations

import asyncio
import contextvars
import importlib
import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from pathlib import Path
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
import fastapi_offline

from ..errors import (EmbedderError, IndexCorruptError, IndexMissingError, IndexStaleError, InputError, LLMError,
                      RagError)
from ..feedback import CITATION_KEYS, FeedbackStore
from ..pipeline import Pipeline, clean_question
from ..serialize import answer_to_dict
from ..settings import Settings
from .ratelimit import RateLimiter
from .sources import ORIGINAL, library_of, original_html, parse_marks

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20  # a question, a capped history and some slack; anything bigger is not a question
MAX_QUEUED_PER_WORKER = 16  # API requests allowed to wait per pipeline slot before the API answers 503
_REQUEST_ID = contextvars.ContextVar("request_id", default="-")
_GOOD_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DOCS_ASSETS = "/docs-assets"  # Swagger UI 5's files, shipped in the fastapi-offline wheel: /docs calls no CDN
DOCS_FILES = Path(fastapi_offline.__file__).parent / "static"


def request_id() -> str:
    """The id of the request being handled (for logs and user-visible error messages)."""
    return _REQUEST_ID.get()


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def error_body(message: str, status: int, **extra: Any) -> dict[str, Any]:
    return {"detail": message, "status": status, "request_id": request_id(), **extra}


class _BodyTooLarge(Exception):
    pass


class RequestIdMiddleware:
    """Pure ASGI: assign a request id (or accept a sane X-Request-ID), echo it in the response headers, cap
    /api request bodies, and turn any exception that escapes the app into a logged 500 without a trace."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if _GOOD_ID.match(incoming) else new_request_id()
        token = _REQUEST_ID.set(rid)
        started = False
        is_api = scope.get("path", "").startswith("/api/")
        t0 = time.perf_counter()
        status_seen = [0]

        async def send_with_id(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                status_seen[0] = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        received = 0

        async def receive_capped():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge()
            return message

        try:
            if is_api:
                length = dict(scope.get("headers") or []).get(b"content-length", b"")
                if length.isdigit() and int(length) > self.max_body:
                    response = JSONResponse(error_body(
                        f"the request body has {int(length)} bytes; the limit is {self.max_body} (请求过大)", 413),
                        status_code=413)
                    return await response(scope, receive, send_with_id)
            await self.app(scope, receive_capped if is_api else receive, send_with_id)
        except Exception:  # the last line of defence: log it with the id, show the id, never the trace
            log.exception("unhandled error [request %s] %s %s", rid, scope.get("method"), scope.get("path"))
            if not started:
                response = JSONResponse(error_body(f"内部错误，请稍后再试；如需反馈，请提供请求编号 {rid} "
                                                   f"(internal error, request id {rid})", 500), status_code=500)
                await response(scope, receive, send_with_id)
        finally:
            if is_api:
                log.info("[request %s] %s %s -> %s in %.0f ms", rid, scope.get("method"), scope.get("path"),
                         status_seen[0], (time.perf_counter() - t0) * 1e3)
            _REQUEST_ID.reset(token)


# --- request bodies ---------------------------------------------------------------------------------


class AskRequest(BaseModel):
    """A question, optionally with the conversation so far and the script of the answer."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"question": "这份文件主要讲了什么？", "history": [], "script": "auto"}]})

    question: str = Field(description="the question; control characters are stripped")
    history: list[tuple[str, str | None]] = Field(
        default_factory=list, description="earlier [user, assistant] turns, oldest first; only the last "
                                          "max_history_turns are used")
    script: Literal["auto", "hans", "hant"] = Field(
        default="auto", description="auto: the question's script; hans: Simplified; hant: Traditional")
    doc_ids: list[str] | None = Field(
        default=None, description="answer from these documents only (ids from GET /api/documents); default: all")


class FeedbackRequest(BaseModel):
    """👍/👎 on an answer the API gave (by its id), with an optional reason."""

    id: str = Field(description="the `id` of the answer JSON")
    rating: Literal["up", "down"]
    reason: str = Field(default="", max_length=1000)


# --- the app ----------------------------------------------------------------------------------------


def client_key(request: Request) -> str:
    """The rate-limit key of a request: the peer address (proxy headers are not trusted)."""
    return request.client.host if request.client else "unknown"


def _status_of(exc: RagError) -> int:
    if isinstance(exc, InputError):
        return 422
    if isinstance(exc, (IndexMissingError, IndexStaleError, IndexCorruptError, EmbedderError)):
        return 503
    if isinstance(exc, LLMError):
        return 502
    return 500


def engine_name(pipeline: Pipeline) -> str:
    """The configured answer engine's name (the pipeline may not have one yet)."""
    engine = getattr(pipeline, "engine", None)
    return getattr(engine, "name", None) or pipeline.settings.answer_engine


def citation_record(c: dict[str, Any]) -> dict[str, Any]:
    """What a feedback row keeps of a citation: where it points and what it quotes."""
    return {k: c.get(k) for k in CITATION_KEYS}


def sse_frame(event: str, data: Any) -> str:
    """One Server-Sent Event: its name and one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def document_card(pipeline: Pipeline, doc_id: str) -> dict[str, Any]:
    """How the API names a document: its id, title, kind and date (from its metadata)."""
    meta = pipeline.index.domain.meta(doc_id)
    return {"id": doc_id, "title": meta.title, "kind": meta.kind, "date": meta.date}


# loaded on first use by some questions only (the POS tagger for names and places, pinyin for typo repair and
# verification): half a second each, which the first such asker would otherwise wait
LAZY_MODULES = ("jieba.posseg", "pypinyin")


def warm_up(pipeline: Pipeline) -> float:
    """Answer one throw-away question so lazily loaded parts (tokenisers, sentence vectors) are ready before the
    first user arrives; returns the seconds it took."""
    t0 = time.perf_counter()
    doc = next(iter(pipeline.index.documents.values()), None)
    try:
        for name in LAZY_MODULES:
            importlib.import_module(name)
        pipeline.ask((doc.title if doc else "") or "这份文件主要讲了什么？")
    except Exception:  # a failed warm-up only means a slower first answer
        log.warning("warm-up question failed", exc_info=True)
    return time.perf_counter() - t0


def create_app(settings: Settings, pipeline: Pipeline | None = None, *, feedback: FeedbackStore | None = None,
               limiter: RateLimiter | None = None, warm: bool = False) -> "FastAPI":
    """The FastAPI app: /api/* routes first, then the Gradio page mounted at "/" (a route added after the
    mount would answer 404). `warm`: answer a throw-away question in the background at startup."""
    if pipeline is None:
        pipeline = Pipeline.from_settings(settings, rebuild="auto", progress=log.info)
    feedback = feedback or FeedbackStore(settings.feedback_db)
    limiter = limiter or RateLimiter(settings.rate_limit)
    max_in_flight = settings.chat_concurrency * (1 + MAX_QUEUED_PER_WORKER)
    slots: dict[int, anyio.CapacityLimiter] = {}
    in_flight = [0]
    recent: OrderedDict[str, dict[str, Any]] = OrderedDict()  # answer id -> answer JSON, for /api/feedback

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def flush_feedback():
            while True:
                await asyncio.sleep(30)
                if feedback.pending:
                    await anyio.to_thread.run_sync(feedback.flush)

        async def warm_in_background():
            seconds = await anyio.to_thread.run_sync(warm_up, pipeline)
            app.state.warm = True
            log.info("pipeline warmed up in %.1f s", seconds)

        tasks = [asyncio.create_task(flush_feedback())]
        if warm:
            tasks.append(asyncio.create_task(warm_in_background()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            if feedback.pending:
                left = await anyio.to_thread.run_sync(feedback.flush)
                if left:
                    log.error("feedback database still unavailable at shutdown: %d row(s) lost", left)

    app = FastAPI(title="政策文件问答 API", version="1.0",
                  description="Questions about the Wenzhou 2023 science-and-technology plan, answered from the "
                              "document with numbered citations. The chat page is at /.",
                  lifespan=lifespan, docs_url=None, redoc_url=None)  # /docs is served below, offline
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.feedback = feedback
    app.state.limiter = limiter
    app.state.warm = not warm
    app.add_middleware(RequestIdMiddleware)

    # --- errors → JSON with the request id -----------------------------------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        message, status = exc.detail, exc.status_code
        if status == 400 and isinstance(exc.__cause__, _BodyTooLarge):
            message, status = f"the request body is over {MAX_BODY_BYTES} bytes (请求过大)", 413
        elif status == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            message = "the request body is not valid UTF-8 JSON; send UTF-8 encoded JSON (请求内容不是有效的 UTF-8)"
        elif status == 400 and message == "There was an error parsing the body":
            message = "the request body could not be read as JSON (请求内容无法解析)"
        if status >= 500:
            log.error("[request %s] %s", request_id(), message)
        return JSONResponse(error_body(str(message), status), status_code=status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append({"field": loc, "message": err.get("msg", "invalid")})
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
        return JSONResponse(error_body(f"invalid request — {summary} (请求格式不正确)", 422, errors=problems),
                            status_code=422)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, exc: RagError):
        status = _status_of(exc)
        log.log(logging.INFO if status < 500 else logging.ERROR, "[request %s] %s: %s", request_id(),
                type(exc).__name__, exc)
        return JSONResponse(error_body(str(exc), status), status_code=status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.error("[request %s] unhandled %s", request_id(), type(exc).__name__, exc_info=exc)
        rid = request_id()
        return JSONResponse(error_body(f"内部错误，请稍后再试；如需反馈，请提供请求编号 {rid} (internal error)", 500),
                            status_code=500)

    # --- dependencies -------------------------------------------------------------------------------------
    def rate_limited(request: Request) -> None:
        wait = limiter.hit(client_key(request))
        if wait:
            raise HTTPException(429, f"too many requests: the limit is {limiter.per_minute} per minute; retry in "
                                     f"{wait} s (请求过于频繁，请 {wait} 秒后再试)",
                                headers={"Retry-After": str(wait)})

    def slot() -> anyio.CapacityLimiter:
        loop_id = id(asyncio.get_running_loop())  # a limiter belongs to one event loop (tests start several)
        if loop_id not in slots:
            slots.clear()
            slots[loop_id] = anyio.CapacityLimiter(settings.chat_concurrency)
        return slots[loop_id]

    # --- routes -------------------------------------------------------------------------------------------
    def checked(body: AskRequest) -> tuple[str, list]:
        """The cleaned question and capped history; empty → 422, too long → 413, too many waiting → 503."""
        question = clean_question(body.question, 1 << 30)  # empty → InputError → 422; length checked next
        if len(question) > settings.max_question_chars:
            raise HTTPException(413, f"the question has {len(question)} characters; the limit is "
                                     f"{settings.max_question_chars} (问题过长：{len(question)} 字，上限 "
                                     f"{settings.max_question_chars} 字)")
        if in_flight[0] >= max_in_flight:
            raise HTTPException(503, "the server is busy; retry in a few seconds (服务器繁忙，请稍后再试)",
                                headers={"Retry-After": "2"})
        history = [[u, a or ""] for u, a in body.history[-settings.max_history_turns:]] \
            if settings.max_history_turns else []
        return question, history

    def remember(answer, answer_id: str) -> dict[str, Any]:
        data = answer_to_dict(answer, answer_id)
        recent[answer_id] = data
        while len(recent) > 1000:
            recent.popitem(last=False)
        return data

    ask_errors = {413: {"description": "question too long"}, 422: {"description": "empty question or bad request"},
                  429: {"description": "rate limited (see Retry-After)"}, 503: {"description": "busy"}}

    @app.post("/api/ask", dependencies=[Depends(rate_limited)], summary="Answer one question",
              responses=ask_errors)
    async def ask(body: AskRequest) -> JSONResponse:
        """The answer JSON (`answer` is null and `refused` true when the document has no answer)."""
        question, history = checked(body)
        in_flight[0] += 1
        try:
            answer = await anyio.to_thread.run_sync(
                lambda: pipeline.ask(question, history, script=body.script, doc_ids=body.doc_ids), limiter=slot())
        finally:
            in_flight[0] -= 1
        return JSONResponse(remember(answer, request_id()))

    @app.post("/api/ask/stream", dependencies=[Depends(rate_limited)], response_class=StreamingResponse,
              summary="Answer one question as Server-Sent Events", responses=ask_errors)
    async def ask_stream(body: AskRequest) -> StreamingResponse:
        """`text/event-stream`. Events, in order: `quoted` (with an LLM: the extractive answer JSON, shown at once
        as quoted text), `delta` ({"text"}: each verified piece of the composed answer, in the model's numbering),
        `citations` ({"citations"}: the final answer's), `final` (the answer JSON, as /api/ask returns it: it
        replaces what was streamed), or `error` ({"detail", "status", "request_id"}) if the answer fails midway."""
        question, history = checked(body)
        answer_id = request_id()
        events = pipeline.stream(question, history, script=body.script, doc_ids=body.doc_ids)
        in_flight[0] += 1

        async def sse():
            try:
                while (event := await anyio.to_thread.run_sync(next, events, None, limiter=slot())) is not None:
                    for name, data in sse_events(event, answer_id):
                        yield sse_frame(name, data)
            except RagError as exc:
                yield sse_frame("error", error_body(str(exc), _status_of(exc)))
            except Exception as exc:  # the headers are sent: the error goes in the stream
                log.error("[request %s] unhandled %s in a stream", answer_id, type(exc).__name__, exc_info=exc)
                yield sse_frame("error", error_body(f"内部错误，请稍后再试；请求编号 {answer_id} (internal error)", 500))
            finally:
                in_flight[0] -= 1

        def sse_events(event, answer_id: str):
            if event.quoted is not None:
                yield "quoted", answer_to_dict(event.quoted, answer_id) | {"quoted": True}
            if event.delta:
                yield "delta", {"text": event.delta}
            if event.answer is not None:
                data = remember(event.answer, answer_id)
                yield "citations", {"citations": data["citations"]}
                yield "final", data

        return StreamingResponse(sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/feedback", status_code=202, dependencies=[Depends(rate_limited)],
              summary="👍/👎 on an answer given by /api/ask")
    async def give_feedback(body: FeedbackRequest) -> dict[str, Any]:
        """Stored in SQLite; when the database is unavailable the row waits in memory (`queued` > 0)."""
        data = recent.get(body.id)
        if data is None:
            raise HTTPException(404, f"no recent answer with id {body.id!r}; feedback is accepted for the last "
                                     "1000 answers of this server (找不到这个回答)")
        row_id = await anyio.to_thread.run_sync(lambda: feedback.record(
            id=f"api-{body.id}", rating=body.rating, reason=body.reason, question=data["question"],
            answer=data["answer"], refused=data["refused"],
            citations=[citation_record(c) for c in data["citations"]], engine=data["engine"],
            embedder=data["embedder"], settings_hash=settings.fingerprint(), script=data["script"], source="api"))
        return {"id": row_id, "stored": feedback.pending == 0, "queued": feedback.pending}

    @app.get("/api/health", summary="Is the index loaded; which engine, embedder and how many documents")
    async def health() -> dict[str, Any]:
        index = pipeline.index
        return {"status": "ok", "index_loaded": index is not None and len(index.chunks) > 0,
                "engine": engine_name(pipeline), "embedder": pipeline.embedder.name,
                "embedder_notice": pipeline.embedder.notice, "documents": len(index.documents),
                "chunks": len(index.chunks), "warmed_up": app.state.warm, "feedback_queued": feedback.pending,
                "settings_hash": settings.fingerprint()}

    @app.get("/api/documents", summary="The documents of the corpus: id, title, kind, date")
    async def documents() -> list[dict[str, Any]]:
        return [document_card(pipeline, d) for d in pipeline.index.documents]

    @app.get("/api/documents/{doc_id}", summary="One cleaned document (the text every offset points into)")
    async def document(doc_id: str) -> dict[str, Any]:
        doc = pipeline.index.documents.get(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id!r}; known: {sorted(pipeline.index.documents)[:20]} "
                                     "(找不到该文件)")
        outline = [{"id": n.id, "kind": n.kind, "level": n.level, "title": n.title, "head_start": n.head_start,
                    "head_end": n.head_end, "start": n.start, "end": n.end, "parent": n.parent, "how": n.how}
                   for n in pipeline.index.outline if n.doc_id == doc_id and n.kind in ("section", "part", "passage")]
        return document_card(pipeline, doc_id) | {"text": doc.text, "outline": outline}

    library = library_of(pipeline)

    @app.get("/api/documents/{doc_id}/view", response_class=HTMLResponse,
             summary="The page's 原文 view of a document: its table of contents and text with spans marked")
    async def document_view(doc_id: str, script: Literal["hans", "hant", "en", "orig"] = "hans",
                            marks: str = Query("", max_length=2000, description="spans to mark: n:start-end,…"),
                            current: int | None = None) -> HTMLResponse:
        """An HTML fragment (every document string escaped) in the asker's script, or as written (`orig`)."""
        doc = pipeline.index.documents.get(doc_id)
        if doc is None:
            raise HTTPException(404, f"no document {doc_id!r} (找不到该文件)")
        shown = ORIGINAL if script == "orig" else script
        return HTMLResponse(original_html(doc, library, parse_marks(marks, len(doc.text)), current, shown))

    # --- the API docs: Swagger UI from local files (the default page loads it from a CDN) -----------------
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(DOCS_FILES)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} — docs",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None})  # no badge fetched from validator.swagger.io

    # --- the page, mounted last ------------------------------------------------------------------------
    from .ui import build_ui, mount  # imports gradio (about 3 s)

    demo = build_ui(pipeline, settings, feedback, limiter)
    return mount(app, demo)

