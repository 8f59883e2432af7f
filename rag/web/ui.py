"""The Gradio page: chat on the left, numbered source cards on the right (a bottom sheet on a phone), the 原文 view
with the document's outline, honest refusals, feedback, a 关于 panel and a quiet footer.

Everything shown is built by `render.py` and `sources.py`, which escape all text from a user or a document; the
behaviour in the browser (markers, sheet, 原文 view, length notice, screen-reader text) is `static/page.js`.
"""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no calls home

import json  # noqa: E402
import logging  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import gradio as gr  # noqa: E402

from ..errors import (EmbedderError, IndexCorruptError, IndexMissingError, IndexStaleError, InputError,  # noqa: E402
                      LLMError, RagError)
from ..feedback import CITATION_KEYS, FeedbackStore  # noqa: E402
from ..pipeline import Pipeline, clean_question  # noqa: E402
from ..serialize import citation_to_dict  # noqa: E402
from ..settings import Settings  # noqa: E402
from ..types import Answer  # noqa: E402
from . import render, sources  # noqa: E402
from .ratelimit import RateLimiter  # noqa: E402

log = logging.getLogger(__name__)

GENERIC_TITLE = "政策文件问答"
ALL_DOCUMENTS = "__all__"
SCRIPTS = [("自动", "auto"), ("简体", "hans"), ("繁體", "hant")]
SYSTEM_FONTS = ["system-ui", "-apple-system", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
                "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
STATIC = Path(__file__).parent / "static"
MAX_EXAMPLES = 6  # shown in the empty chat, where a phone sees them on the first screen
PANEL_TURNS = 20  # answers whose cards the panel keeps (older markers no longer open a card)
SHOWN_PREFIX = 80  # characters of a refused over-long question echoed in the chat


def theme() -> gr.themes.Base:
    """The default theme with system fonts: nothing is fetched from a font CDN."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def _client(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def _status(text: str):
    return gr.update(value=f'<p role="status">{render.text_html(text)}</p>', visible=True)


def _message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _index_of(data: gr.EventData) -> int | None:
    index = getattr(data, "index", None)
    return index[0] if isinstance(index, (list, tuple)) else index


def user_message(exc: RagError, request_id: str) -> str:
    """A domain error as a sentence for the person asking (the details go to the log under the same id)."""
    if isinstance(exc, (IndexMissingError, IndexStaleError, IndexCorruptError)):
        what = "文件索引暂时不可用（管理员可运行 python -m rag build 重建）"
    elif isinstance(exc, EmbedderError):
        what = "向量模型暂时无法加载"
    elif isinstance(exc, LLMError):
        what = "回答引擎暂时无法连接"
    elif isinstance(exc, InputError):
        what = "这个问题无法处理，请换个说法"
    else:
        what = "暂时无法回答"
    return f"抱歉，{what}。请稍后再试；如需反馈，请提供编号 {request_id}。"


def page_title(pipeline: Pipeline) -> str:
    """The page's title: the corpus's declared one, else its only document's title, else a generic one."""
    domain = pipeline.index.domain
    if domain.title:
        return domain.title
    return f"{domain.meta().title} · 问答" if len(domain.docs) == 1 else GENERIC_TITLE


def example_questions(pipeline: Pipeline) -> dict[str, tuple[str, ...]]:
    """The corpus's declared example questions, else questions about the terms its documents quote."""
    domain = pipeline.index.domain
    if domain.examples:
        return dict(domain.examples)
    quoted = [t for t, how in domain.term_source.items() if how == "quoted" and 2 <= len(t) <= 10][:4]
    return {"示例": tuple(f"“{t}”是什么？" for t in quoted) or ("这份文件主要讲了什么？",)}


def first_examples(groups: dict[str, tuple[str, ...]], limit: int = MAX_EXAMPLES) -> list[str]:
    """Up to `limit` example questions, taking from each group in turn (so every kind of reader finds one)."""
    out: list[str] = []
    queues = [list(qs) for qs in groups.values()]
    while len(out) < limit and any(queues):
        for queue in queues:
            if queue and len(out) < limit:
                out.append(queue.pop(0))
    return out


def document_choices(pipeline: Pipeline) -> list[tuple[str, str]]:
    """The document scope menu: all documents, then each one with its date, newest first."""
    domain = pipeline.index.domain
    docs = sorted(pipeline.index.documents, key=lambda d: (domain.meta(d).date, d), reverse=True)

    def label(d: str) -> str:
        meta = domain.meta(d)
        return meta.title + (f"（{meta.date}）" if meta.date and meta.date[:4] not in meta.title else "")

    return [(f"全部文件（{len(docs)} 份）", ALL_DOCUMENTS)] + [(label(d), d) for d in docs]


@dataclass
class Chat:
    """The page's event handlers over one pipeline: answer (streamed), feedback, clear."""

    pipeline: Pipeline
    settings: Settings
    feedback_store: FeedbackStore
    limiter: RateLimiter

    def __post_init__(self) -> None:
        self.library = sources.library_of(self.pipeline)
        self.engine = getattr(getattr(self.pipeline, "engine", None), "name", None) or self.settings.answer_engine
        self.settings_hash = self.settings.fingerprint()

    # --- answering ------------------------------------------------------------------------------------

    def about(self, answer: Answer | None = None) -> str:
        index = self.pipeline.index
        return render.about_html(answer.engine if answer else self.engine,
                                 answer.embedder if answer else self.pipeline.embedder.name,
                                 self.pipeline.embedder.notice, answer.notice if answer else "",
                                 documents=len(index.documents), chunks=len(index.chunks))

    @staticmethod
    def panel(turns: list, pending: str | None = None) -> str:
        sections = [t["section"] for t in turns[-PANEL_TURNS:]] + ([pending] if pending else [])
        return sources.panel_html(sections)

    def respond(self, message: str, messages: list, turns: list, script: str, scope: str,
                request: gr.Request) -> Iterator[tuple]:
        """Stream one answer into the chat; outputs: textbox, chatbot, messages, turns, panel, about, status."""
        messages, turns = list(messages or []), list(turns or [])
        text = message if isinstance(message, str) else ""

        def out(box=gr.skip(), panel=gr.skip(), about=gr.skip(), status=gr.skip()):
            return box, messages, messages, turns, panel, about, status

        if not text.strip():
            yield out()
            return
        question, refusal = self._checked(text, request)
        if refusal is not None:
            messages += [_message("user", render.chat_text(question)), _message("assistant", render.notice_message(refusal))]
            yield out()  # the question stays in the box: shorten it, or retry after the wait
            return
        messages += [_message("user", render.chat_text(question)), _message("assistant", render.streaming_message(""))]
        turn = len(turns)
        yield out(box="", panel=self.panel(turns, sources.turn_html(None, self.library, turn, question)),
                  status=gr.update(value="", visible=False))
        answer, shown = None, None
        for bubble, quoted, answer in self._stream(question, turns, script, scope, turn):
            if answer is None:
                messages[-1] = _message("assistant", bubble)
                fresh, shown = quoted is not None and quoted is not shown, quoted or shown
                section = sources.turn_html(quoted, self.library, turn, question, pending=True) if fresh else None
                yield out(panel=self.panel(turns, section) if section else gr.skip())  # once: a card stays open
        if answer is None:
            yield out(panel=self.panel(turns))
            return
        self._record_turn(answer, question, messages, turns, turn)
        yield out(panel=self.panel(turns), about=self.about(answer))

    def _checked(self, text: str, request: gr.Request | None) -> tuple[str, str | None]:
        """(the question as shown, a notice instead of an answer): over the length limit, or over the rate limit."""
        try:
            question = clean_question(text, 1 << 30)
        except InputError:
            return text.strip()[:SHOWN_PREFIX], "问题是空的，请输入一个关于文件内容的问题。"
        limit = self.settings.max_question_chars
        if len(question) > limit:
            shown = question[:SHOWN_PREFIX] + "…"
            return shown, render.too_long_notice(len(question), limit)
        wait = self.limiter.hit(_client(request))
        if wait:
            return question, f"提问有点太频繁了（每分钟最多 {self.limiter.per_minute} 次），请 {wait} 秒后再试，谢谢理解。"
        return question, None

    def _stream(self, question: str, turns: list, script: str, scope: str,
                turn: int) -> Iterator[tuple[str, Answer | None, Answer | None]]:
        """(bubble so far, the quoted answer shown meanwhile or None, None) for every streamed step, then
        ("", None, the Answer); an error ends with a notice. With an LLM the quoted (extractive) answer shows at
        once, the model's text grows below it, and the verified answer replaces both."""
        rid = uuid.uuid4().hex[:16]
        history = [(t["question"], t["answer"] or "") for t in turns]
        doc_ids = [scope] if scope and scope != ALL_DOCUMENTS and scope in self.library.documents else None
        partial, quoted, answer = "", None, None
        try:
            for event in self.pipeline.stream(question, history, script=script or "auto", doc_ids=doc_ids):
                partial += event.delta or ""
                quoted = event.quoted or quoted
                if event.answer is not None:
                    answer = event.answer
                elif event.delta or event.quoted:
                    yield self._bubble(partial, quoted, turn), quoted, None
            if answer is None:
                raise RuntimeError("the pipeline's stream ended without an answer")
        except RagError as exc:
            log.warning("[request %s] chat: %s: %s", rid, type(exc).__name__, exc)
            yield render.notice_message(user_message(exc, rid)), None, None
            return
        except Exception:
            log.exception("[request %s] chat: unexpected error", rid)
            yield render.notice_message(f"抱歉，系统出错了。请稍后再试；如需反馈，请提供编号 {rid}。"), None, None
            return
        log.info("[request %s] chat answered in %.0f ms (engine %s, refused %s)", rid,
                 answer.timings_ms.get("total", 0.0), answer.engine, answer.refused)
        yield "", None, answer

    @staticmethod
    def _bubble(partial: str, quoted: Answer | None, turn: int) -> str:
        """The bubble while an answer streams: the text so far, below the quoted answer when there is one."""
        if quoted is None or not quoted.text:
            return render.streaming_message(partial)
        numbers = [p.n for p in sources.card_passages(quoted)]
        return render.quoted_message(quoted, numbers, turn, partial)

    def _record_turn(self, answer: Answer, question: str, messages: list, turns: list, turn: int) -> None:
        """The finished bubble and panel section, and what feedback on this answer will store."""
        numbers = [p.n for p in sources.card_passages(answer)]
        messages[-1] = _message("assistant", render.answer_message(answer, numbers, turn))
        turns.append({
            "message": len(messages) - 1, "section": sources.turn_html(answer, self.library, turn, question),
            "feedback_id": uuid.uuid4().hex, "question": answer.question, "answer": answer.text,
            "refused": answer.refused, "engine": answer.engine, "embedder": answer.embedder, "script": answer.script,
            "rating": "none", "reason": "",
            "citations": [{k: d[k] for k in CITATION_KEYS} for d in map(citation_to_dict, answer.citations)],
        })

    def example(self, messages: list, turns: list, script: str, scope: str, data: gr.SelectData,
                request: gr.Request) -> Iterator[tuple]:
        """A tapped example question is sent at once (not only put in the box)."""
        value = data.value if isinstance(data.value, dict) else {"text": str(data.value or "")}
        yield from self.respond(value.get("text", ""), messages, turns, script, scope, request)

    # --- feedback ------------------------------------------------------------------------------------

    def _store(self, turn: dict[str, Any]) -> str:
        self.feedback_store.record(
            id=turn["feedback_id"], rating=turn["rating"], reason=turn["reason"], question=turn["question"],
            answer=turn["answer"], refused=turn["refused"], citations=turn["citations"], engine=turn["engine"],
            embedder=turn["embedder"], settings_hash=self.settings_hash, script=turn["script"], source="chat")
        return "" if self.feedback_store.pending == 0 else "（数据库暂时不可用，反馈已暂存，稍后自动写入）"

    def like(self, turns: list, data: gr.LikeData):
        """👍/👎 on an answer bubble: stored at once; the reason box opens for an optional explanation."""
        index = _index_of(data)
        turn = next((t for t in turns or [] if t["message"] == index), None)
        if turn is None:
            return turns, None, _status("这条消息不是回答，无需评价。"), gr.update(visible=False)
        turn["rating"] = "up" if data.liked is True else "down" if data.liked is False else "none"
        note = self._store(turn)
        if turn["rating"] == "none":
            return turns, None, _status(f"已撤回评价。{note}"), gr.update(visible=False)
        verdict = "有帮助" if turn["rating"] == "up" else "没帮助"
        return (turns, index, _status(f"已记录您的评价（{verdict}），谢谢！可以在下面补充原因（可选）。{note}"),
                gr.update(visible=True))

    def reason(self, reason: str, turns: list, target: int | None):
        turn = next((t for t in turns or [] if t["message"] == target), None)
        if turn is None or not (reason or "").strip():
            return gr.skip(), turns, gr.skip(), gr.skip()
        turn["reason"] = reason.strip()[:1000]
        note = self._store(turn)
        return "", turns, _status(f"原因已记录，谢谢！{note}"), gr.update(visible=False)

    def clear(self):
        """A new conversation; a question being typed stays in the box."""
        return (gr.skip(), [], [], [], self.panel([]), self.about(), gr.update(value="", visible=False), None,
                gr.update(visible=False))


@dataclass
class Page:
    """The page's components, for wiring events."""

    chatbot: Any
    box: Any
    send: Any
    script: Any
    scope: Any
    status: Any
    reason_row: Any
    reason: Any
    reason_send: Any
    panel: Any
    about: Any


def _header(title: str, documents: int) -> None:
    gr.HTML(f"<h1>{render.text_html(title)}</h1><p>回答只依据收录的 {documents} 份文件原文，并标注出处；"
            "文件里没有的内容会直说。</p>", elem_id="rag-header", js_on_load=None)


def _chat_column(chat: Chat, examples: list[str], choices: list) -> dict[str, Any]:
    """The left column: the chat (examples in it while empty), the question box, feedback, options, 关于."""
    chatbot = gr.Chatbot(
        value=[], show_label=False, elem_id="rag-chat", height="min(62vh, 600px)", min_height=300,
        buttons=[], feedback_options=("Like", "Dislike"), sanitize_html=True, render_markdown=True,
        latex_delimiters=[], allow_tags=False, line_breaks=True, layout="bubble",
        placeholder="你好！请输入关于文件内容的问题，或点一个示例问题：", examples=[{"text": q} for q in examples])
    with gr.Row(elem_id="rag-input-row", equal_height=True):
        box = gr.Textbox(show_label=False, label="你的问题", placeholder="输入问题，按回车发送", lines=1, max_lines=4,
                         scale=5, min_width=0, container=False, elem_id="rag-question", autofocus=False)
        send = gr.Button("发送", variant="primary", scale=0, min_width=72, elem_id="rag-send")
    status = gr.HTML("", elem_id="rag-feedback-status", js_on_load=None, visible=False)
    with gr.Row(visible=False, elem_id="rag-reason-row", equal_height=True) as reason_row:
        reason = gr.Textbox(show_label=False, placeholder="可选：原因（例如：引用不对、没有回答问题）", scale=5,
                            min_width=0, container=False, max_length=1000, elem_id="rag-reason")
        reason_send = gr.Button("提交原因", scale=0, min_width=96, elem_id="rag-reason-send")
    script = gr.Radio(SCRIPTS, value=chat.settings.script, label="回答用字（自动：跟随提问）", elem_id="rag-script")
    scope = gr.Dropdown(choices, value=ALL_DOCUMENTS, label="在哪些文件里找答案", elem_id="rag-scope",
                        visible=len(choices) > 2, interactive=True)
    with gr.Accordion("关于", open=False, elem_id="rag-about"):
        about = gr.HTML(chat.about(), js_on_load=None, elem_id="rag-about-body")
    gr.HTML(render.footer_html(len(chat.library.documents)), elem_id="rag-footer", js_on_load=None)
    return dict(chatbot=chatbot, box=box, send=send, script=script, scope=scope, status=status,
                reason_row=reason_row, reason=reason, reason_send=reason_send, about=about)


def _layout(chat: Chat, title: str, examples: list[str], choices: list) -> Page:
    _header(title, len(chat.library.documents))
    with gr.Row(elem_id="rag-main", equal_height=False):
        with gr.Column(scale=3, min_width=0, elem_id="rag-left"):
            parts = _chat_column(chat, examples, choices)
        with gr.Column(scale=2, min_width=0, elem_id="rag-panel"):
            panel = gr.HTML(chat.panel([]), elem_id="rag-sources", js_on_load=None)
    return Page(panel=panel, **parts)


# After 👍/👎 on a phone the confirmation and the reason box sit below the fold: bring them into view.
SHOW_FEEDBACK_JS = """() => { setTimeout(() => {
  const el = document.querySelector('#rag-reason-row:not([hidden])') || document.querySelector('#rag-feedback-status');
  if (el) el.scrollIntoView({block: 'center', behavior: 'instant'}); }, 50); }"""


def _wire(chat: Chat, page: Page) -> None:
    messages, turns, target = gr.State([]), gr.State([]), gr.State(None)
    outputs = [page.box, page.chatbot, messages, turns, page.panel, page.about, page.status]
    for trigger in (page.box.submit, page.send.click):
        trigger(chat.respond, [page.box, messages, turns, page.script, page.scope], outputs, show_progress="hidden")
    page.chatbot.example_select(chat.example, [messages, turns, page.script, page.scope], outputs,
                                show_progress="hidden")
    page.chatbot.like(chat.like, [turns], [turns, target, page.status, page.reason_row], show_progress="hidden") \
        .then(None, None, None, js=SHOW_FEEDBACK_JS)
    for trigger in (page.reason.submit, page.reason_send.click):
        trigger(chat.reason, [page.reason, turns, target], [page.reason, turns, page.status, page.reason_row],
                show_progress="hidden")
    page.chatbot.clear(chat.clear, None, outputs + [target, page.reason_row], show_progress="hidden")


def build_ui(pipeline: Pipeline, settings: Settings, feedback_store: FeedbackStore,
             limiter: RateLimiter) -> gr.Blocks:
    """The chat page; events are queued with `chat_concurrency` workers and a bounded queue."""
    chat = Chat(pipeline, settings, feedback_store, limiter)
    title = page_title(pipeline)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        page = _layout(chat, title, first_examples(example_questions(pipeline)), document_choices(pipeline))
        _wire(chat, page)
    demo.queue(default_concurrency_limit=settings.chat_concurrency, max_size=settings.chat_concurrency * 16)
    demo.rag_config = {"maxChars": settings.max_question_chars}  # read by mount(): the page script's settings
    return demo


def page_assets(config: dict[str, Any]) -> tuple[str, str]:
    """(head, js): the page's stylesheet in <head> (unscoped, so its media queries apply) and its script, run
    once on load with the page's settings."""
    css = (STATIC / "page.css").read_text(encoding="utf-8")
    script = (STATIC / "page.js").read_text(encoding="utf-8").strip().rstrip(";")
    return f"<style>{css}</style>", f"() => ({script})({json.dumps(config)})"


def mount(app, demo: gr.Blocks):
    """Mount the page at "/" (after every API route), with system fonts and no Gradio footer links."""
    head, js = page_assets(getattr(demo, "rag_config", {"maxChars": 500}))
    return gr.mount_gradio_app(app, demo, path="/", theme=theme(), head=head, js=js, footer_links=[],
                               show_error=False, ssr_mode=False, pwa=False, mcp_server=False, run_history=False)
