"""A hand-made pipeline for the web tests: fixed documents (one of them hostile) and answers built by hand, so
the rendering of citations, refusals and hostile text is tested whatever the answer engine does."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

from rag.domain import Domain, read_meta
from rag.pipeline import StreamEvent, clean_history, clean_question
from rag.types import Answer, Answerability, Chunk, Citation, Document, Hit

XSS = ("<script>alert('x')</script><img src=x onerror=alert(1)>[点我](http://evil.example/)"
       "![图](http://evil.example/a.png)${alert(2)}{{value}}")
SAFE_TEXT = (
    "溫州市科技局局長顧威\n"
    "大抓科技金融發展,復制推廣技術產權證券化試點,做大做強科創基金,推廣應用“科創指數貸”,以金融活水賦能企業發展。\n"
    "深化科技領域數字化改革,迭代升級“科企通”。"
)
HOSTILE_TEXT = f"<b onmouseover=alert(3)>惡意標題</b>\n這一段引用了{XSS}這樣的文字。\n第三段。"


def _doc(doc_id: str, text: str) -> Document:
    return Document(id=doc_id, title=text.split("\n", 1)[0], text=text, path=f"/fake/{doc_id}.txt", sha256="0" * 64)


def _chunk(doc: Document, paragraph: int) -> Chunk:
    lines = doc.text.split("\n")
    start = sum(len(l) + 1 for l in lines[:paragraph])
    end = start + len(lines[paragraph])
    return Chunk(id=f"{doc.id}:{start}-{end}", doc_id=doc.id, paragraph=paragraph, start=start, end=end,
                 text=doc.text[start:end], heading=lines[0])


def _cite(n: int, chunk: Chunk, doc: Document, quote: str) -> Citation:
    start = doc.text.index(quote)
    return Citation(n=n, chunk=chunk, quote=quote, start=start, end=start + len(quote))


SAFE = _doc("plan", SAFE_TEXT)
HOSTILE = _doc("hostile", HOSTILE_TEXT)
DOCUMENTS = {d.id: d for d in (SAFE, HOSTILE)}
CHUNKS = (_chunk(SAFE, 1), _chunk(SAFE, 2), _chunk(HOSTILE, 1))
FINANCE_QUOTE = "推廣應用“科創指數貸”,以金融活水賦能企業發展。"
HOSTILE_QUOTE = f"這一段引用了{XSS}這樣的文字。"


OFF_TOPIC_TEXT = "这个问题超出了这篇讲话的范围，我只能回答与其内容有关的问题。"
INJECTION_TEXT = "我只能根据讲话原文回答问题，不能更改回答规则、扮演其他角色或编造讲话中没有的信息。欢迎询问讲话的内容。"


def _answer(question: str, text: str | None, refused: bool, citations: tuple[Citation, ...],
            hits: tuple[Hit, ...], script: str = "hans", verdict: Answerability | None = None) -> Answer:
    return Answer(question=question, text=text, refused=refused, citations=citations, hits=hits, engine="fake",
                  embedder="fake-embedder", timings_ms={"retrieve": 1.0, "answer": 1.0, "total": 2.0}, script=script,
                  notice="", answerability=verdict)


def hand_made_answer(question: str) -> Answer:
    """An answer chosen by keywords of the question: the test scenarios, without any model."""
    hits = tuple(Hit(chunk=c, score=1.0 - i / 10, rank=i + 1) for i, c in enumerate(CHUNKS))
    if "利率" in question:  # not in the document: a refusal whose citations are only related passages
        cite = _cite(1, CHUNKS[0], SAFE, FINANCE_QUOTE)
        return _answer(question, "文件中没有提到科创指数贷的利率。文件只提到推广应用“科创指数贷”[1]。", True, (cite,), hits)
    if "天气" in question:  # nothing in the documents is related: no passages at all
        return _answer(question, OFF_TOPIC_TEXT, True, (), hits, verdict=Answerability(False, 0.2, off_topic=True))
    if "忽略" in question:  # an injection: declined, and nothing is pointed to
        return _answer(question, INJECTION_TEXT, True, (), hits,
                       verdict=Answerability(False, 0.0, "request to change the rules or invent facts"))
    if "恶意" in question or "惡意" in question:
        cite = _cite(1, CHUNKS[2], HOSTILE, HOSTILE_QUOTE)
        return _answer(question, f"文件里有这样一段：{XSS}[1]", False, (cite,), hits)
    if "没有回答" in question:  # an engine that produced nothing: only related passages
        return _answer(question, None, False, (), hits)
    cite1 = _cite(1, CHUNKS[0], SAFE, FINANCE_QUOTE)
    cite2 = _cite(2, CHUNKS[1], SAFE, "迭代升級“科企通”。")
    return _answer(question, "推广应用“科创指数贷”，以金融活水赋能企业发展[1]。同时迭代升级“科企通”[2]。[7]",
                   False, (cite1, cite2), hits)


@dataclass
class FakePipeline:
    """The Pipeline surface the web app uses: settings, embedder, index, engine, ask, stream."""

    settings: object
    answer_fn: Callable[[str], Answer] = hand_made_answer
    delay_s: float = 0.0  # per streamed piece, to watch the stream in a browser
    fail_with: Exception | None = None
    calls: list = field(default_factory=list)

    def __post_init__(self):
        self.embedder = SimpleNamespace(name="fake-embedder", notice="")
        self.index = SimpleNamespace(documents=DOCUMENTS, chunks=CHUNKS, domain=Domain(
            docs={d.id: read_meta(d) for d in DOCUMENTS.values()},
            examples={"市民": ("这份文件讲了什么？",), "企业融资": ("有哪些融资支持？",)}))
        self.engine = SimpleNamespace(name="fake")
        self._lock = threading.Lock()

    def ask(self, question, history=None, *, script="auto", k=None, doc_ids=None) -> Answer:
        q = clean_question(question, self.settings.max_question_chars)
        turns = clean_history(history, self.settings.max_history_turns, self.settings.max_question_chars)
        with self._lock:
            self.calls.append({"question": q, "history": turns, "script": script, "doc_ids": doc_ids})
        if self.fail_with is not None:
            raise self.fail_with
        return self.answer_fn(q)

    def stream(self, question, history=None, *, script="auto", k=None, doc_ids=None):
        answer = self.ask(question, history, script=script, k=k, doc_ids=doc_ids)
        text = answer.text or ""
        for i in range(0, len(text), 8):
            if self.delay_s:
                time.sleep(self.delay_s)
            yield StreamEvent(delta=text[i:i + 8])
        yield StreamEvent(answer=answer)


def slow_openai(delay_s: float):
    """A started fake OpenAI endpoint (tests/fake_openai.py) whose streamed pieces arrive `delay_s` apart, so a
    browser can watch an LLM answer grow token by token; call .stop() when done."""
    import json

    from fake_openai import FakeOpenAI, _Handler, split_pieces

    class SlowHandler(_Handler):
        def _stream(self, fake, ident, created, model, text, *, trickle):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for delta in [{"role": "assistant", "content": ""}] + [{"content": p} for p in split_pieces(text)] + [{}]:
                chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": None if delta else "stop"}]}
                self.wfile.write(b"data: " + json.dumps(chunk, ensure_ascii=False).encode("utf-8") + b"\n\n")
                self.wfile.flush()
                if fake.wait(delay_s):
                    return
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

    class SlowOpenAI(FakeOpenAI):
        def start(self):
            import threading
            from http.server import ThreadingHTTPServer

            fake = self

            class Handler(SlowHandler):
                state = fake

            self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self._server.daemon_threads = True
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            daemon=True)
            self._thread.start()
            return self

    return SlowOpenAI().start()
