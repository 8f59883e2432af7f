"""`python app.py [--host H] [--port P]`: build or refresh the index if needed, then serve the chat page and
the HTTP API (one process) and print the URL. Everything runs offline on the default configuration."""
from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before anything imports gradio

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from rag.errors import RagError  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.settings import build_settings, corpus_overrides  # noqa: E402
from rag.web import create_app  # noqa: E402


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _announce_when_up(server, url: str) -> None:
    """Print the URL once uvicorn is really listening (not before: the port may be taken)."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        print(f"\n  The policy Q&A app is running: {url}\n  API docs: {url}docs   health: {url}api/health\n",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Policy document Q&A — web app and HTTP API")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--corpus", help="a folder of documents, or one document (default: data/corpus, the speech)")
    parser.add_argument("--index", help="the index folder (default: index/default, or index/corpora/<name>-<hash> "
                                        "for another corpus)")
    args = parser.parse_args(argv)

    import uvicorn

    try:
        settings = build_settings(overrides=corpus_overrides(args.corpus, args.index))
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("faiss").setLevel(logging.WARNING)
        t0 = time.perf_counter()
        pipeline = Pipeline.from_settings(settings, rebuild="auto", progress=_progress)
        _progress(f"index ready: {len(pipeline.index.documents)} document(s), {len(pipeline.index.chunks)} chunks, "
                  f"embedder {pipeline.embedder.name} ({time.perf_counter() - t0:.1f} s)")
        app = create_app(settings, pipeline, warm=True)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = args.host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{args.port}/"
    # keep-alive longer than uvicorn's 5 s: under load a client's pooled connection can sit idle that long, and a
    # server-side close then surfaces as a transport error on its next request
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=args.port, log_level="info", access_log=False,
                                           timeout_graceful_shutdown=5, timeout_keep_alive=30))
    threading.Thread(target=_announce_when_up, args=(server, url), daemon=True).start()
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
