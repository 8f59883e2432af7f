"""`python -m bench.first_answer --llm-url http://127.0.0.1:8088/v1 --llm-model M [--questions N] [--json PATH]`:
how long a user waits for the first visible answer when an LLM composes, against a real (slow) model.

Serves the app (API + page) in this process with the LLM engine, then for the first N single-turn answerable
questions of the speech's dev set measures:
  - the streaming API: seconds from the request to the `quoted` event (the extractive answer, shown at once) and to
    the `final` event (the verified composed answer or the fallback);
  - the page, in Debian's Chromium (Playwright): seconds from pressing send to the first answer text in the chat
    bubble, and to the finished bubble.
Prints p50/p95 of each; a benchmark with printed figures, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "eval" / "dev" / "d3_speech_dev.jsonl"
BOT = "#rag-chat [data-testid='bot']"
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update", "--no-first-run"]


def questions(n: int) -> list[str]:
    items = [json.loads(line) for line in DEV.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [i["question"] for i in items if i.get("answerable") and not i.get("history")][:n]


def serve(app) -> str:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def stream_times(url: str, question: str) -> tuple[float, float, str]:
    """(seconds to the first event that shows an answer, seconds to `final`, the final engine)."""
    import httpx

    t0 = time.perf_counter()
    first = None
    with httpx.stream("POST", f"{url}/api/ask/stream", json={"question": question}, timeout=300) as r:
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
                if first is None and event in ("quoted", "delta", "final"):
                    first = time.perf_counter() - t0
            elif line.startswith("data: ") and event == "final":
                return first, time.perf_counter() - t0, json.loads(line[6:])["engine"]
    raise RuntimeError("the stream ended without a final event")


def page_times(page, question: str) -> tuple[float, float]:
    """(seconds from send to the first answer text in the new bubble, to the finished bubble)."""
    before = page.locator(BOT).count()
    page.fill("#rag-question textarea", question)
    t0 = time.perf_counter()
    page.click("#rag-send")
    page.wait_for_function("""([sel, n]) => { const b = document.querySelectorAll(sel);
        return b.length > n && b[b.length - 1].innerText.replace('▍', '').trim().length > 0; }""",
                           arg=[BOT, before], timeout=300_000, polling=10)
    first = time.perf_counter() - t0
    page.wait_for_function("""([sel, n]) => { const b = document.querySelectorAll(sel);
        return b.length > n && !b[b.length - 1].innerText.includes('▍') && !b[b.length - 1].querySelector('.rag-quoted'); }""",
                           arg=[BOT, before], timeout=300_000)
    return first, time.perf_counter() - t0


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 3),
            "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
            "max": round(ordered[-1], 3), "n": len(ordered)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.first_answer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm-url", required=True)
    parser.add_argument("--llm-model", default="local")
    parser.add_argument("--llm-timeout", type=float, default=60.0)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "first_answer.json")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from rag.settings import build_settings
    from rag.web import create_app

    settings = build_settings(overrides={"answer_engine": "openai", "llm_base_url": args.llm_url,
                                         "llm_model": args.llm_model, "llm_timeout_s": args.llm_timeout,
                                         "rate_limit": 0})
    app = create_app(settings, warm=True)  # as app.py serves it: warmed up before the first user
    url = serve(app)
    while not app.state.warm:
        time.sleep(0.1)
    qs = questions(args.questions)
    api = [stream_times(url, q) for q in qs]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "/")
        page.wait_for_selector("#rag-question textarea")
        shown = [page_times(page, q) for q in qs]
        browser.close()
    result = {"questions": len(qs), "llm": {"url": args.llm_url, "model": args.llm_model},
              "api_first_answer_s": summary([a[0] for a in api]), "api_final_s": summary([a[1] for a in api]),
              "api_final_engines": [a[2] for a in api],
              "page_first_answer_s": summary([s[0] for s in shown]), "page_final_s": summary([s[1] for s in shown]),
              "each": [{"question": q, "api_first": round(a[0], 3), "api_final": round(a[1], 3),
                        "page_first": round(s[0], 3), "page_final": round(s[1], 3)} for q, a, s in zip(qs, api, shown)]}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    for key in ("api_first_answer_s", "api_final_s", "page_first_answer_s", "page_final_s"):
        print(f"{key:22s} p50 {result[key]['p50']:7.3f}  p95 {result[key]['p95']:7.3f}  max {result[key]['max']:7.3f}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
