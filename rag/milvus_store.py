"""Chunk vectors in Milvus behind the VectorStore interface: a Milvus Lite database inside the index folder (the
default, `milvus_uri = ""`), or any Milvus given by `milvus_uri` (a server such as http://127.0.0.1:19530, or a
shared Milvus Lite `.db` path). The same pymilvus `MilvusClient` code talks to both.

One collection per index: primary key `row` (the chunk's position in chunks.jsonl), scalar `doc_id` (searches kept
to some documents filter on it), `vector` (FLOAT_VECTOR, inner product over the embedder's normalised vectors, so a
score is the cosine FAISS reports). Index FLAT (exact) or HNSW (M 32, efConstruction 80, ef = hnsw_ef_search), by
the same `vector_index` rule as FAISS: `auto` is HNSW from `hnsw_threshold` chunks.

On disk, beside the other index files:
    milvus.json   where the vectors live (uri, collection), kind, count, dim, metric, versions
    milvus.db/    the Milvus Lite database (only when milvus_uri is "")
A build fills a scratch database beside the target folder; `save(tmp)` closes it and moves it into the temporary
folder `build_index` then renames into place, so the database always travels with its index. With a server, each
build writes a new collection `<milvus_collection>_<stamp>`; saving drops older ones of that name except the one
the index being replaced still serves (so use one `milvus_collection` per index folder).

Milvus Lite (3.x, pure Python) runs inside the process that opens it and locks its folder: one process at a time
(the app, or a CLI command, not both); for several processes run a Milvus server and set `milvus_uri`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Collection, Sequence

import numpy as np

from .errors import IndexCorruptError, IndexStaleError, RagError, SettingsError
from .settings import Settings
from .types import Chunk

log = logging.getLogger(__name__)

LITE_DIR = "milvus.db"
META = "milvus.json"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
METRIC = "IP"
INSERT_BATCH = 2_000
MAX_TOPK = 16_384  # Milvus's limit on k
CONNECT_TIMEOUT_S = 10.0
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,199}$")
_FIX_SERVER = ("start it (a Milvus server, or `milvus-lite server --data-dir DIR --port 19530` for a local one) or "
               "set milvus_uri to \"\" to keep the vectors in a Milvus Lite database inside the index folder")


class MilvusUnavailableError(RagError):
    """The Milvus server cannot be reached, or the Milvus Lite database is held by another process."""


def _is_lite(uri: str) -> bool:
    return uri.endswith(".db")  # pymilvus's own rule: a local path ending in .db is a Milvus Lite database


class _LiteServers:
    """The Milvus Lite databases this process has open (pymilvus runs each in an in-process gRPC server, kept until
    released): counted per path, and remembered by folder identity so an index replaced on disk is not served
    from the old, deleted folder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, tuple[tuple[int, int], int]] = {}  # path -> ((st_dev, st_ino), users)

    def acquire(self, path: str) -> None:
        """Count one more user of `path`; a server left from a replaced folder is released first."""
        path = os.path.abspath(path)
        ident = _identity(path)
        with self._lock:
            held = self._open.get(path)
            if held is not None and UNKNOWN not in (held[0], ident) and held[0] != ident:
                _release_server(path)  # the folder was replaced (a rebuild): its server serves deleted files
                held = None
            if held is None:
                _check_unlocked(path)
                self._open[path] = (ident, 1)
            else:
                self._open[path] = (held[0] if held[0] != UNKNOWN else ident, held[1] + 1)

    def settle(self, path: str) -> None:
        """Remember the identity of a folder the server has just created."""
        path = os.path.abspath(path)
        with self._lock:
            held = self._open.get(path)
            if held is not None and held[0] == UNKNOWN:
                self._open[path] = (_identity(path), held[1])

    def release(self, path: str, force: bool = False) -> None:
        """One user fewer; the server stops with the last one (`force`: now, whoever else uses it)."""
        path = os.path.abspath(path)
        with self._lock:
            held = self._open.get(path)
            if held is None and not force:
                return
            users = 0 if held is None or force else held[1] - 1
            if users > 0:
                self._open[path] = (held[0], users)
                return
            self._open.pop(path, None)
        _release_server(path)


UNKNOWN = (0, 0)


def _identity(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
        return st.st_dev, st.st_ino
    except OSError:
        return UNKNOWN


def _release_server(path: str) -> None:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(path)


def _check_unlocked(path: str) -> None:
    """MilvusUnavailableError when another process holds the database (Milvus Lite's LOCK file)."""
    lock = Path(path) / "LOCK"
    if not lock.exists():
        return
    import fcntl

    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    except BlockingIOError:
        raise MilvusUnavailableError(
            f"the Milvus Lite database {path} is open in another process (Milvus Lite serves one process at a "
            f"time: the app, or a CLI command); stop that process, or run a Milvus server and set milvus_uri to "
            f"its address so several processes can share it") from None
    finally:
        os.close(fd)


_LITE = _LiteServers()


def _milvus_error(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return re.sub(r"\s+", " ", str(message)).strip()[:300]


def _connect(uri: str):
    """A MilvusClient for `uri`; MilvusUnavailableError (with the fix) when it cannot connect."""
    try:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException
    except ImportError as exc:
        raise SettingsError(f"vector_store=milvus needs pymilvus and milvus-lite ({exc}); install requirements.txt "
                            f"(`pip install -r requirements.txt`) or set vector_store=faiss") from None
    kwargs: dict = {}
    if _is_lite(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        _LITE.acquire(uri)
        # an in-process server: no keepalive pings while idle (the Lite server answers them with GOAWAY)
        kwargs["grpc_options"] = {"grpc.keepalive_permit_without_calls": 0}
    try:
        client = MilvusClient(uri=uri, timeout=CONNECT_TIMEOUT_S, **kwargs)
    except MilvusException as exc:
        if _is_lite(uri):
            _LITE.release(uri, force=True)
            raise IndexCorruptError(f"cannot open the Milvus Lite database {uri} ({_milvus_error(exc)}); rebuild "
                                    f"with `python -m rag build`") from None
        raise MilvusUnavailableError(f"cannot reach Milvus at {uri} ({_milvus_error(exc)}); {_FIX_SERVER}") from None
    if _is_lite(uri):
        _LITE.settle(uri)
    return client


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("pymilvus", "milvus-lite"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _kind(settings: Settings, count: int) -> str:
    kind = settings.vector_index
    if kind == "auto":
        kind = "hnsw" if count >= settings.hnsw_threshold else "flat"
    return kind


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise SettingsError(f"milvus_collection {name!r} is not a Milvus collection name; use letters, digits and "
                            f"underscores, starting with a letter or underscore (at most 200 characters)")


class MilvusStore:
    """Exact (FLAT) or approximate (HNSW) inner-product search in a Milvus collection; rows are chunk positions."""

    def __init__(self, uri: str, collection: str, kind: str, count: int, dim: int, ef_search: int,
                 uri_setting: str) -> None:
        self._uri = uri  # what the client connects to (a Lite folder path or a server address)
        self._uri_setting = uri_setting  # what the settings said ("" = a Lite database inside the index)
        self._collection = collection
        self._kind = kind
        self._count = count
        self._dim = dim
        self._ef_search = ef_search
        self._client = None
        self._closer = None
        self._lock = threading.Lock()
        self._scratch: Path | None = None
        self._keep: set[str] = set()
        self._finalizer = None

    # -- the VectorStore interface ------------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return f"milvus-{self._kind}"

    def __len__(self) -> int:
        return self._count

    def search(self, query: np.ndarray, k: int, doc_ids: Collection[str] | None = None) -> list[tuple[int, float]]:
        """(row, cosine) pairs, best first, of all rows or of the given documents' rows (`doc_id in [...]`)."""
        expr = ""
        if doc_ids is not None:
            wanted = list(dict.fromkeys(str(d) for d in doc_ids))
            if not wanted:
                return []
            expr = f"doc_id in [{', '.join(json.dumps(d, ensure_ascii=False) for d in wanted)}]"
        k = min(k, self._count, MAX_TOPK)
        if k <= 0:
            return []
        params: dict = {"metric_type": METRIC}
        if self._kind == "hnsw":
            params["params"] = {"ef": max(self._ef_search, k)}
        vector = np.ascontiguousarray(query, dtype=np.float32).reshape(-1).tolist()
        from pymilvus.exceptions import MilvusException

        try:
            found = self._connected().search(self._collection, data=[vector], limit=k, filter=expr,
                                             output_fields=["row"], search_params=params, anns_field="vector")
        except MilvusException as exc:
            raise self._failure("search", exc) from None
        return [(int(hit.id), float(hit.distance)) for hit in found[0]]

    def save(self, folder: Path) -> None:
        """Record where the vectors live (milvus.json); a Milvus Lite database moves (after a build) or is copied
        into `folder`."""
        folder = Path(folder)
        if not self._uri_setting:
            target = folder / LITE_DIR
            if Path(self._uri).resolve() != target.resolve():
                self._flush()
                self.close()
                if target.exists():
                    shutil.rmtree(target)
                if self._scratch is not None:  # a new build: its database moves into the index
                    os.replace(self._uri, target)
                    shutil.rmtree(self._scratch, ignore_errors=True)
                    self._scratch = None
                    if self._finalizer is not None:
                        self._finalizer.detach()
                    self._uri = str(target.resolve())
                else:
                    shutil.copytree(self._uri, target, ignore=shutil.ignore_patterns("LOCK"))
        else:
            self._flush()
            self._drop_stale()
        meta = {"uri": self._uri_setting, "collection": self._collection, "kind": self.kind, "count": self._count,
                "dim": self._dim, "metric": METRIC,
                "index": ({"type": "HNSW", "M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
                          if self._kind == "hnsw" else {"type": "FLAT"}),
                "versions": _versions()}
        (folder / META).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")

    # -- build and load --------------------------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: np.ndarray, chunks: Sequence[Chunk], settings: Settings, folder: Path) -> "MilvusStore":
        """A new collection holding the chunks' vectors; `folder` is the index's final path (a Lite database is
        filled in a scratch folder beside it until `save`)."""
        _check_name(settings.milvus_collection)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but vectors of shape {vectors.shape}")
        dim = int(vectors.shape[1])
        kind = _kind(settings, len(chunks))
        folder = Path(folder)
        scratch = None
        keep: set[str] = set()
        if not settings.milvus_uri:
            folder.parent.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.milvus-", dir=folder.parent)).resolve()
            uri, collection = str(scratch / LITE_DIR), settings.milvus_collection
        else:
            uri, collection = settings.milvus_uri, f"{settings.milvus_collection}_{time.time_ns():x}"
            current = _read_meta(folder, missing_ok=True)
            if current and current.get("uri") == settings.milvus_uri:
                keep.add(str(current.get("collection")))
        store = cls(uri, collection, kind, len(chunks), dim, settings.hnsw_ef_search, settings.milvus_uri)
        store._scratch, store._keep = scratch, keep
        if scratch is not None:
            store._finalizer = weakref.finalize(store, _discard_scratch, uri, scratch)
        try:
            store._fill(vectors, [c.doc_id for c in chunks])
        except BaseException:
            store.discard()
            raise
        return store

    def _fill(self, vectors: np.ndarray, doc_ids: Sequence[str]) -> None:
        from pymilvus import DataType, MilvusClient
        from pymilvus.exceptions import MilvusException

        client = self._connected(load=False)
        try:
            if client.has_collection(self._collection):
                client.drop_collection(self._collection)
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("row", DataType.INT64, is_primary=True)
            longest = max((len(d.encode("utf-8")) for d in doc_ids), default=1)
            schema.add_field("doc_id", DataType.VARCHAR, max_length=min(65_535, max(256, 2 * longest)))
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(vectors.shape[1]))
            index = client.prepare_index_params()
            if self._kind == "hnsw":
                index.add_index(field_name="vector", index_type="HNSW", metric_type=METRIC,
                                params={"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION})
            else:
                index.add_index(field_name="vector", index_type="FLAT", metric_type=METRIC)
            client.create_collection(self._collection, schema=schema, index_params=index)
            for start in range(0, len(doc_ids), INSERT_BATCH):
                stop = min(start + INSERT_BATCH, len(doc_ids))
                client.insert(self._collection, [{"row": r, "doc_id": doc_ids[r], "vector": vectors[r].tolist()}
                                                 for r in range(start, stop)])
            client.flush(self._collection)
            client.load_collection(self._collection)
        except MilvusException as exc:
            raise self._failure("build", exc) from None

    @classmethod
    def load(cls, chunks: Sequence[Chunk], settings: Settings, folder: Path, manifest: dict) -> "MilvusStore":
        """The store of a built index; IndexCorruptError when its database or collection is missing or unreadable,
        IndexStaleError when the settings point at another Milvus, MilvusUnavailableError when it cannot be reached."""
        folder = Path(folder)
        meta = _read_meta(folder)
        if meta.get("uri", "") != settings.milvus_uri:
            raise IndexStaleError(f"index at {folder} keeps its vectors at milvus_uri={meta.get('uri', '')!r}, the "
                                  f"settings say {settings.milvus_uri!r}; rebuild with `python -m rag build`")
        if settings.milvus_uri:
            uri = settings.milvus_uri
            if _is_lite(uri) and not Path(uri).is_dir():
                raise IndexCorruptError(f"the Milvus Lite database {uri} (milvus_uri) does not exist; rebuild with "
                                        f"`python -m rag build`")
        else:
            uri = str((folder / LITE_DIR).resolve())
            if not Path(uri).is_dir() or not (Path(uri) / "collections").is_dir():
                raise IndexCorruptError(f"index at {folder} has no Milvus Lite database ({LITE_DIR} missing or not a "
                                        f"database); rebuild with `python -m rag build`")
        kind = str(meta.get("kind", "milvus-flat")).removeprefix("milvus-")
        store = cls(uri, str(meta.get("collection")), kind, 0, int(meta.get("dim", manifest.get("dim", 0))),
                    settings.hnsw_ef_search, settings.milvus_uri)
        try:
            store._open_existing(manifest)
        except BaseException:
            store.close()
            raise
        return store

    def _open_existing(self, manifest: dict) -> None:
        from pymilvus.exceptions import MilvusException

        client = self._connected(load=False)
        try:
            if not client.has_collection(self._collection):
                raise IndexCorruptError(f"collection {self._collection!r} is missing from Milvus at {self._uri} "
                                        f"(dropped, or another database); rebuild with `python -m rag build`")
            fields = {f["name"]: f for f in client.describe_collection(self._collection)["fields"]}
            dim = int((fields.get("vector") or {}).get("params", {}).get("dim", -1))
            if {"row", "doc_id", "vector"} - fields.keys() or dim != manifest.get("dim", dim):
                raise IndexCorruptError(f"collection {self._collection!r} at {self._uri} does not hold this index's "
                                        f"vectors (fields {sorted(fields)}, dim {dim}); rebuild with `python -m rag build`")
            client.load_collection(self._collection)
            self._count = int(client.get_collection_stats(self._collection).get("row_count", 0))
        except MilvusException as exc:
            raise self._failure("load", exc) from None

    # -- connection --------------------------------------------------------------------------------------------------

    def _connected(self, load: bool = True):
        with self._lock:
            if self._client is None:
                client = _connect(self._uri)
                closer = weakref.finalize(self, _close_client, client, self._uri)
                if load:
                    from pymilvus.exceptions import MilvusException

                    try:
                        client.load_collection(self._collection)
                    except MilvusException as exc:
                        closer()
                        raise self._failure("load", exc) from None
                self._client, self._closer = client, closer
            return self._client

    def _failure(self, doing: str, exc: Exception) -> RagError:
        message = _milvus_error(exc)
        if getattr(exc, "code", None) == 2 or "unavailable" in message.lower() or "connect" in message.lower():
            return MilvusUnavailableError(f"Milvus at {self._uri} stopped answering during {doing} ({message}); "
                                          f"{_FIX_SERVER}")
        return IndexCorruptError(f"Milvus collection {self._collection!r} at {self._uri} failed during {doing} "
                                 f"({message}); rebuild with `python -m rag build`")

    def _flush(self) -> None:
        from pymilvus.exceptions import MilvusException

        if self._client is not None:
            try:
                self._client.flush(self._collection)
            except MilvusException as exc:
                raise self._failure("save", exc) from None

    def _drop_stale(self) -> None:
        """Drop this index's earlier collections on a server, keeping the new one and the one still served."""
        from pymilvus.exceptions import MilvusException

        base = self._collection.rsplit("_", 1)[0]
        pattern = re.compile(rf"^{re.escape(base)}_[0-9a-f]{{12,}}$")
        client = self._connected(load=False)
        try:
            for name in client.list_collections():
                if pattern.match(name) and name != self._collection and name not in self._keep:
                    client.drop_collection(name)
                    log.info("dropped the stale Milvus collection %s", name)
        except MilvusException as exc:
            log.warning("could not drop stale Milvus collections (%s)", _milvus_error(exc))

    def close(self) -> None:
        """Close the client; a Milvus Lite database is released when its last store in this process closes (also
        when a store is garbage-collected)."""
        with self._lock:
            closer, self._client, self._closer = self._closer, None, None
        if closer is not None:
            closer()

    def discard(self) -> None:
        """Close, and delete an unsaved build's scratch database (or, on a server, its new collection)."""
        if self._uri_setting and self._client is not None:
            try:
                self._client.drop_collection(self._collection)
            except Exception:
                pass
        self.close()
        if self._finalizer is not None:
            self._finalizer()


def _close_client(client, uri: str) -> None:
    try:
        client.close()
    except Exception:  # closing a client whose server is gone
        pass
    if _is_lite(uri):
        _LITE.release(uri)


def _discard_scratch(uri: str, scratch: Path) -> None:
    """An unsaved build's scratch database: released and deleted (a failed or abandoned build leaves nothing)."""
    _LITE.release(uri, force=True)
    shutil.rmtree(scratch, ignore_errors=True)


def _read_meta(folder: Path, missing_ok: bool = False) -> dict:
    path = Path(folder) / META
    if not path.exists():
        if missing_ok:
            return {}
        raise IndexCorruptError(f"index at {folder} has no {META} (where its Milvus vectors live); rebuild with "
                                f"`python -m rag build`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not meta.get("collection"):
            raise ValueError("no collection named")
        return meta
    except (OSError, ValueError) as exc:
        if missing_ok:
            return {}
        raise IndexCorruptError(f"{path} is unreadable ({exc}); rebuild with `python -m rag build`") from None
