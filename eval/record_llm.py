"""`python -m eval.record_llm --dataset D --out F [--limit N] [--set llm_base_url=…] [--set llm_model=…]`:
ask a real OpenAI-compatible model the dataset's single-turn questions through the LLM engine, and record, for
each, the question, the evidence numbering the model saw, its raw reply and what verification decided (outcome,
reason, each claim's action). tests/test_llm_replay.py replays the replies through the fake server and checks that
verification still decides the same; the decisions are audited by hand before a recording is committed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rag.errors import LLMError, RagError
from rag.llm_engine import LLMEngine, messages_for
from rag.settings import build_settings, parse_overrides

from .run import load_dataset


def decision(draft) -> dict:
    """What verification decided about a reply: outcome, reason and the claims' actions."""
    v = draft.verification or {}
    return {"outcome": v.get("outcome"), "reason": v.get("reason", ""),
            "actions": [c.get("action") for c in v.get("claims") or []]}


def record_one(pipe, item: dict) -> dict | None:
    """Ask one question; None when no reply could be recorded (refused, no evidence, endpoint failure)."""
    prepared = pipe.prepare(item["question"])
    if not hasattr(prepared, "evidence") or not prepared.verdict.answerable:
        return None
    engine: LLMEngine = pipe.engine
    ev = prepared.evidence
    quoted = engine.extractive.answer(ev)  # the evidence the model composes from
    cits = quoted.citations
    if not cits:
        return None
    t0 = time.perf_counter()
    try:
        raw = engine.backend.complete(messages_for(ev.question.text, cits, ev.question.script,
                                                   engine.extractive.domain))
    except (LLMError, RagError) as exc:
        print(f"  {item.get('id')}: {exc}", file=sys.stderr)
        return None
    draft = engine.finish(raw, ev, quoted)
    return {"id": item.get("id"), "question": item["question"], "evidence": [c.quote for c in cits],
            "reply": raw, "seconds": round(time.perf_counter() - t0, 1), "expected": decision(draft)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.record_llm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", default=[])
    args = parser.parse_args(argv)
    from rag.pipeline import Pipeline

    settings = build_settings(overrides={"answer_engine": "openai", **parse_overrides(args.set)})
    pipe = Pipeline.from_settings(settings)
    if not isinstance(pipe.engine, LLMEngine):
        print("error: the settings select no LLM engine", file=sys.stderr)
        return 2
    items = [i for i in load_dataset(Path(args.dataset)) if not i.get("history")]
    rows = []
    for item in items:
        if len(rows) >= args.limit:
            break
        row = record_one(pipe, item)
        if row:
            rows.append(row)
            print(f"{row['id']}: {row['expected']['outcome']} {row['expected']['reason']} ({row['seconds']} s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} replies recorded in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
