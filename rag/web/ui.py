"""The Gradio page: a streaming chat with numbered source cards, 原文 view, refusals, feedback and a footer.

Everything shown is built by `render.py`, which escapes all text that comes from a user or a document.
"""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no calls home

import logging  # noqa: E402
import uuid  # noqa: E402
from typing import Any, Iterator  # noqa: E402

import gradio as gr  # noqa: E402

from ..errors import (EmbedderError, IndexCorruptError, IndexMissingError, IndexStaleError, InputError,  # noqa: E402
                      LLMError, RagError)
from ..feedback import CITATION_KEYS, FeedbackStore  # noqa: E402
from ..serialize import citation_to_dict  # noqa: E402
from ..pipeline import Pipeline, clean_question  # noqa: E402
from ..settings import Settings  # noqa: E402
from ..types import Answer  # noqa: E402
from . import render  # noqa: E402
from .ratelimit import RateLimiter  # noqa: E402

log = logging.getLogger(__name__)

GENERIC_TITLE = "政策文件问答"
SCRIPTS = [("自动", "auto"), ("简体", "hans"), ("繁體", "hant")]
SYSTEM_FONTS = ["system-ui", "-apple-system", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
                "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]

CSS = """
.gradio-container { max-width: 920px !important; margin: 0 auto !important; }
#rag-header h1 { font-size: 1.35rem; margin: 0.2rem 0; }
#rag-header p { margin: 0; color: var(--body-text-color-subdued); font-size: 0.9rem; }
#rag-input-row { flex-wrap: nowrap !important; gap: 8px; align-items: stretch; }
#rag-input-row > * { min-width: 0 !important; }
#rag-send { flex: 0 0 auto !important; min-width: 72px !important; max-width: 96px; }
.rag-cite { color: var(--color-accent); font-weight: 600; font-size: 0.75em; margin: 0 1px; }
.rag-refusal { border: 1px solid #e0a84f; border-left: 4px solid #d98b18; background: #fff7e8; color: #5c3b00;
  border-radius: 6px; padding: 8px 10px; }
.rag-refusal small, .rag-notice small { color: inherit; opacity: 0.85; }
#rag-chat .message:has(.rag-refusal), #rag-chat .message:has(.rag-notice) { border: none !important;
  background: transparent !important; padding: 0 !important; }
.rag-notice { border: 1px dashed #9aa4b2; background: #f4f6f8; color: #33404d; border-radius: 6px; padding: 8px 10px; }
.rag-sources h3 { font-size: 1rem; margin: 0.6rem 0 0.3rem; }
.rag-hint { font-size: 0.85rem; color: var(--body-text-color-subdued); margin: 0 0 0.4rem; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; margin: 6px 0;
  background: var(--block-background-fill); overflow-wrap: anywhere; }
.rag-card-related { border-style: dashed; }
.rag-card header { font-size: 0.85rem; color: var(--body-text-color-subdued); margin-bottom: 4px; }
.rag-card-n { font-weight: 700; color: var(--color-accent); }
.rag-card-related .rag-card-n { color: #8a6d3b; }
.rag-passage { margin: 0; line-height: 1.7; }
mark.rag-quote { background: #ffe58a; color: inherit; padding: 0 1px; border-radius: 2px; }
mark.rag-related-mark { background: #eef1f5; color: inherit; }
.rag-original summary { cursor: pointer; font-size: 0.85rem; color: var(--color-accent); margin-top: 4px; }
.rag-doc-text { position: relative; white-space: pre-wrap; max-height: 55vh; overflow: auto; line-height: 1.8;
  border-top: 1px solid var(--border-color-primary); margin-top: 6px; padding-top: 6px; overflow-wrap: anywhere; }
.rag-footer { font-size: 0.8rem; color: var(--body-text-color-subdued); text-align: center; margin: 8px 0; }
.rag-offline { color: #8a5a00; }
#rag-feedback-status p { margin: 0; font-size: 0.9rem; }
/* media rules only apply inside .contain (gradio prefixes them), so the page margin is a clamp instead */
.gradio-container .main.app { padding-left: clamp(6px, 3vw, 32px) !important;
  padding-right: clamp(6px, 3vw, 32px) !important; }
@media (max-width: 480px) {
  #rag-header h1 { font-size: 1.15rem; }
}
"""

# When a 原文 view opens, scroll its box (not the page) so the highlighted sentence is in sight.
JS = """
() => {
  document.addEventListener('toggle', (event) => {
    const d = event.target;
    if (!(d instanceof HTMLDetailsElement) || !d.classList.contains('rag-original') || !d.open) return;
    const box = d.querySelector('.rag-doc-text');
    const mark = box && box.querySelector('mark');
    if (box && mark) box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3);
  }, true);
}
"""


def theme() -> gr.themes.Base:
    """The default theme with system fonts: nothing is fetched from a font CDN."""
    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def _client(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return getattr(client, "host", None) or "unknown"


def _status(text: str):
    return gr.update(value=f"<p>{render.text_html(text)}</p>", visible=True)


def _message(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


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


ALL_DOCUMENTS = "__all__"


def document_choices(pipeline: Pipeline) -> list[tuple[str, str]]:
    """The document scope menu: all documents, then each one with its date, newest first."""
    domain = pipeline.index.domain
    docs = sorted(pipeline.index.documents, key=lambda d: (domain.meta(d).date, d), reverse=True)
    label = lambda d: f"{domain.meta(d).title}" + (f"（{domain.meta(d).date}）" if domain.meta(d).date and  # noqa: E731
                                                     domain.meta(d).date[:4] not in domain.meta(d).title else "")
    return [(f"全部文件（{len(docs)} 份）", ALL_DOCUMENTS)] + [(label(d), d) for d in docs]


def build_ui(pipeline: Pipeline, settings: Settings, feedback_store: FeedbackStore,
             limiter: RateLimiter) -> gr.Blocks:
    """The chat page; events are queued with `chat_concurrency` workers and a bounded queue."""
    documents = pipeline.index.documents
    engine = getattr(getattr(pipeline, "engine", None), "name", None) or settings.answer_engine
    footer0 = render.footer_html(engine, pipeline.embedder.name, pipeline.embedder.notice)
    settings_hash = settings.fingerprint()

    choices = document_choices(pipeline)

    def respond(message: str, messages: list, turns: list, script: str, scope: str,
                request: gr.Request) -> Iterator[tuple]:
        """Stream one answer into the chat; outputs: textbox, chatbot, messages, turns, sources, footer, status."""
        messages, turns = list(messages or []), list(turns or [])
        text = message if isinstance(message, str) else ""
        rid = uuid.uuid4().hex[:16]

        def out(box=gr.skip(), sources=gr.skip(), footer=gr.skip(), status=gr.skip()):
            return box, messages, messages, turns, sources, footer, status

        if not text.strip():
            yield out()
            return
        try:
            question = clean_question(text, settings.max_question_chars)
        except InputError:
            shown = text.strip()[:80] + ("…" if len(text.strip()) > 80 else "")
            notice = (f"问题太长了（上限 {settings.max_question_chars} 字），请一次只问一个要点。"
                      if len(text.strip()) > settings.max_question_chars else "问题是空的，请输入一个关于讲话内容的问题。")
            messages += [_message("user", render.chat_text(shown)), _message("assistant", render.notice_message(notice))]
            yield out()
            return
        wait = limiter.hit(_client(request))
        if wait:
            messages += [_message("user", render.chat_text(question)), _message("assistant", render.notice_message(
                f"提问有点太频繁了（每分钟最多 {limiter.per_minute} 次），请 {wait} 秒后再试，谢谢理解。"))]
            yield out()  # the question stays in the box for the retry
            return
        messages += [_message("user", render.chat_text(question)), _message("assistant", render.streaming_message(""))]
        yield out(box="", sources="", status=gr.update(value="", visible=False))
        history = [(t["question"], t["answer"] or "") for t in turns]
        answer: Answer | None = None
        partial = ""
        try:
            doc_ids = [scope] if scope and scope != ALL_DOCUMENTS and scope in documents else None
            for event in pipeline.stream(question, history, script=script or "auto", doc_ids=doc_ids):
                if event.delta:
                    partial += event.delta
                    messages[-1] = _message("assistant", render.streaming_message(partial))
                    yield out()
                if event.answer is not None:
                    answer = event.answer
            if answer is None:
                raise RuntimeError("the pipeline's stream ended without an answer")
        except RagError as exc:
            log.warning("[request %s] chat: %s: %s", rid, type(exc).__name__, exc)
            messages[-1] = _message("assistant", render.notice_message(user_message(exc, rid)))
            yield out()
            return
        except Exception:
            log.exception("[request %s] chat: unexpected error", rid)
            messages[-1] = _message("assistant", render.notice_message(
                f"抱歉，系统出错了。请稍后再试；如需反馈，请提供编号 {rid}。"))
            yield out()
            return
        messages[-1] = _message("assistant", render.answer_message(answer))
        shown_sources = render.sources_html(answer, documents)
        turns.append({  # what feedback on this answer will store, and where its bubble is
            "message": len(messages) - 1, "sources": shown_sources, "feedback_id": uuid.uuid4().hex,
            "question": answer.question, "answer": answer.text, "refused": answer.refused, "engine": answer.engine,
            "embedder": answer.embedder, "script": answer.script, "rating": "none", "reason": "",
            "citations": [{k: d[k] for k in CITATION_KEYS} for d in map(citation_to_dict, answer.citations)],
        })
        log.info("[request %s] chat answered in %.0f ms (engine %s, refused %s)", rid,
                 answer.timings_ms.get("total", 0.0), answer.engine, answer.refused)
        yield out(sources=shown_sources,
                  footer=render.footer_html(answer.engine, answer.embedder, pipeline.embedder.notice, answer.notice))

    def _store(turn: dict[str, Any]) -> str:
        feedback_store.record(
            id=turn["feedback_id"], rating=turn["rating"], reason=turn["reason"], question=turn["question"],
            answer=turn["answer"], refused=turn["refused"], citations=turn["citations"], engine=turn["engine"],
            embedder=turn["embedder"], settings_hash=settings_hash, script=turn["script"], source="chat")
        return "" if feedback_store.pending == 0 else "（数据库暂时不可用，反馈已暂存，稍后自动写入）"

    def on_like(turns: list, data: gr.LikeData):
        """👍/👎 on an answer bubble: stored at once; the reason box opens for an optional explanation."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        turn = next((t for t in turns or [] if t["message"] == index), None)
        if turn is None:
            return turns, None, _status("这条消息不是回答，无需评价。"), gr.update(visible=False)
        turn["rating"] = "up" if data.liked is True else "down" if data.liked is False else "none"
        note = _store(turn)
        if turn["rating"] == "none":
            return turns, None, _status(f"已撤回评价。{note}"), gr.update(visible=False)
        thumb = "👍" if turn["rating"] == "up" else "👎"
        return (turns, index, _status(f"已记录 {thumb}，谢谢！可以在下面补充原因（可选）。{note}"),
                gr.update(visible=True))

    def on_reason(reason: str, turns: list, target: int | None):
        turn = next((t for t in turns or [] if t["message"] == target), None)
        if turn is None or not (reason or "").strip():
            return gr.skip(), turns, gr.skip(), gr.skip()
        turn["reason"] = reason.strip()[:1000]
        note = _store(turn)
        return "", turns, _status(f"原因已记录，谢谢！{note}"), gr.update(visible=False)

    def clear():
        return "", [], [], [], "", footer0, gr.update(value="", visible=False), None, gr.update(visible=False)

    def on_select(turns: list, data: gr.SelectData):
        """Clicking an earlier answer shows its sources again."""
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        turn = next((t for t in turns or [] if t["message"] == index), None)
        return gr.skip() if turn is None else turn["sources"]

    title, examples = page_title(pipeline), example_questions(pipeline)
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.HTML(f"<h1>{render.text_html(title)}</h1><p>回答只依据收录的 {len(documents)} 份文件原文，并标注出处；"
                "文件里没有的内容会直说。</p>",
                elem_id="rag-header", js_on_load=None)
        chatbot = gr.Chatbot(
            value=[], show_label=False, elem_id="rag-chat", height="min(60vh, 560px)", min_height=260,
            buttons=[], feedback_options=("Like", "Dislike"), sanitize_html=True, render_markdown=True,
            latex_delimiters=[], allow_tags=False, line_breaks=True, layout="bubble",
            placeholder="你好！请输入关于文件内容的问题，或点下面的示例问题。")
        with gr.Row(elem_id="rag-input-row", equal_height=True):
            box = gr.Textbox(show_label=False, placeholder="输入问题，按回车发送", lines=1, max_lines=4,
                             max_length=settings.max_question_chars, scale=5, min_width=0, container=False,
                             elem_id="rag-question", autofocus=False)
            send = gr.Button("发送", variant="primary", scale=0, min_width=72, elem_id="rag-send")
        script = gr.Radio(SCRIPTS, value=settings.script, label="回答用字（自动：跟随提问）", elem_id="rag-script")
        scope = gr.Dropdown(choices, value=ALL_DOCUMENTS, label="在哪些文件里找答案", elem_id="rag-scope",
                            visible=len(choices) > 2, interactive=True)
        status = gr.HTML("", elem_id="rag-feedback-status", js_on_load=None, visible=False)
        with gr.Row(visible=False, elem_id="rag-reason-row", equal_height=True) as reason_row:
            reason = gr.Textbox(show_label=False, placeholder="可选：原因（例如：引用不对、没有回答问题）", scale=5,
                                min_width=0, container=False, max_length=1000, elem_id="rag-reason")
            reason_send = gr.Button("提交原因", size="sm", scale=0, min_width=88, elem_id="rag-reason-send")
        sources = gr.HTML("", elem_id="rag-sources", js_on_load=None)
        with gr.Accordion("示例问题", open=True, elem_id="rag-examples"):
            for label, questions in examples.items():
                gr.Examples(list(questions), inputs=[box], label=label, examples_per_page=10)
        footer = gr.HTML(footer0, elem_id="rag-footer", js_on_load=None)

        messages = gr.State([])
        turns = gr.State([])
        target = gr.State(None)
        chat_outputs = [box, chatbot, messages, turns, sources, footer, status]
        for trigger in (box.submit, send.click):
            trigger(respond, [box, messages, turns, script, scope], chat_outputs, show_progress="hidden")
        chatbot.like(on_like, [turns], [turns, target, status, reason_row], show_progress="hidden")
        for trigger in (reason.submit, reason_send.click):
            trigger(on_reason, [reason, turns, target], [reason, turns, status, reason_row], show_progress="hidden")
        chatbot.select(on_select, [turns], [sources], show_progress="hidden")
        chatbot.clear(clear, None, [box, chatbot, messages, turns, sources, footer, status, target, reason_row],
                        show_progress="hidden")
    demo.queue(default_concurrency_limit=settings.chat_concurrency, max_size=settings.chat_concurrency * 16)
    return demo


def mount(app, demo: gr.Blocks):
    """Mount the page at "/" (after every API route), with system fonts and no Gradio footer links."""
    return gr.mount_gradio_app(app, demo, path="/", theme=theme(), css=CSS, js=JS, footer_links=[],
                               show_error=False, ssr_mode=False, pwa=False, mcp_server=False, run_history=False)
