"""The page's chat handler (no browser): with an LLM engine the quoted answer shows at once with its cards
(pending), the model's text grows below it, and the verified answer replaces both; an over-long question is not
sent and the notice says by how much; clearing keeps a question being typed."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from rag.feedback import FeedbackStore
from rag.pipeline import StreamEvent
from rag.web.ratelimit import RateLimiter
from web_fakes import FakePipeline, hand_made_answer

REQUEST = SimpleNamespace(client=SimpleNamespace(host="127.0.0.1"))


@dataclass
class QuotingPipeline(FakePipeline):
    """Streams like the pipeline with an LLM: the quoted answer, two pieces of the model's text, the final."""

    def stream(self, question, history=None, *, script="auto", k=None, doc_ids=None):
        final = self.ask(question, history, script=script, k=k, doc_ids=doc_ids)
        yield StreamEvent(quoted=hand_made_answer("文件原文的摘引"))
        yield StreamEvent(delta="模型写的第一句。")
        yield StreamEvent(delta="第二句。")
        yield StreamEvent(answer=final)


@pytest.fixture
def chat(session_settings, tmp_path):
    from rag.web.ui import Chat

    settings = session_settings.replace(rate_limit=0, feedback_db=tmp_path / "fb.sqlite")
    return lambda pipeline: Chat(pipeline(settings), settings, FeedbackStore(tmp_path / "fb.sqlite"), RateLimiter(0))


def run(chat, question: str) -> list[tuple]:
    """Every step the handler yields, copied as it was then (the handler keeps updating the same lists)."""
    return [copy.deepcopy(step) for step in chat.respond(question, [], [], "auto", "__all__", REQUEST)]


def test_the_quoted_answer_comes_first_then_the_models_text_then_the_verified_answer(chat):
    steps = run(chat(QuotingPipeline), "有哪些融资支持")
    bubbles = [messages[-1]["content"] for _, messages, *_ in steps]
    panels = [panel for *_, panel, _, _ in steps]
    quoted = [b for b in bubbles if "rag-quoted" in b]
    assert len(quoted) == 3  # the quote alone, then with each piece of the model's text
    assert quoted[0].endswith("▍") and "模型写的" not in quoted[0] and "rag-cite rag-t-0 rag-n-1" in quoted[0]
    assert "模型写的第一句" in quoted[1] and "第二句" not in quoted[1] and "第二句" in quoted[2]
    pending = [p for p in panels if isinstance(p, str) and "rag-pending" in p]
    assert "正在查找来源" in pending[0] and "<article" not in pending[0]
    assert len(pending) == 2 and pending[1].count("<article") == 2  # the quote's cards, once, marked as pending
    final = bubbles[-1]
    assert "rag-quoted" not in final and "▍" not in final and 'class="rag-answer rag-t-0"' in final
    assert "rag-pending" not in panels[-1] and panels[-1].count("<article") == 2
    assert steps[-1][3][0]["answer"] == hand_made_answer("有哪些融资支持").text


def test_the_extractive_path_needs_no_quote(chat):
    steps = run(chat(FakePipeline), "有哪些融资支持")
    assert not any("rag-quoted" in messages[-1]["content"] for _, messages, *_ in steps)
    assert 'class="rag-answer rag-t-0"' in steps[-1][1][-1]["content"]


def test_an_over_long_question_is_not_sent_and_the_notice_says_by_how_much(chat):
    c = chat(FakePipeline)
    steps = run(c, "融" * 530)
    box, messages, _, turns, *_ = steps[-1]
    assert turns == [] and c.pipeline.calls == []
    assert "530 字" in messages[-1]["content"] and "多了 30 字" in messages[-1]["content"]
    assert box is not None and not isinstance(box, str)  # gr.skip(): the question stays in the box


def test_clearing_the_chat_keeps_the_question_being_typed(chat):
    box, chatbot, messages, turns, panel, *_ = chat(FakePipeline).clear()
    assert not isinstance(box, str) and chatbot == [] and turns == [] and "rag-welcome" in panel
