"""Passage vectors cached by content hash, kept in the index folder (cache.npz: keys and vectors, no pickle): a
rebuild, `rag add` or `rag remove` embeds only the texts it has not embedded before, and a text that is both a
chunk and a unit is embedded once."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)
FILE = "cache.npz"


def key(embedder_name: str, text: str) -> bytes:
    """The cache key of a passage for an embedder: 20 bytes of SHA-1."""
    return hashlib.sha1(f"{embedder_name}\0passage\0{text}".encode("utf-8")).digest()


class VectorCache:
    """{content hash: vector} for one embedder."""

    def __init__(self, embedder_name: str, vectors: dict[bytes, np.ndarray] | None = None) -> None:
        self.embedder_name = embedder_name
        self.vectors = vectors or {}
        self.hits = 0
        self.misses = 0
        self.seconds = 0.0

    @classmethod
    def load(cls, folder: Path, embedder_name: str) -> "VectorCache":
        """The cache of an existing index folder, or an empty one (missing, unreadable, or another embedder's)."""
        path = Path(folder) / FILE
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["embedder"]) != embedder_name:
                    return cls(embedder_name)
                keys, vectors = data["keys"], data["vectors"]
                return cls(embedder_name, {bytes(k): v for k, v in zip(keys, vectors)})
        except (OSError, KeyError, ValueError):
            return cls(embedder_name)

    def embed(self, embedder, texts: Sequence[str], progress: Callable[[int, int], None] | None = None,
              step: int = 256) -> np.ndarray:
        """Vectors of the texts, embedding (in steps, deduplicated) only those the cache lacks."""
        keys = [key(self.embedder_name, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self.vectors))
        texts_of = {k: t for k, t in zip(keys, texts)}
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        t0 = time.perf_counter()
        for i in range(0, len(missing), step):
            batch = missing[i : i + step]
            for k, v in zip(batch, embedder.embed_documents([texts_of[k] for k in batch])):
                self.vectors[k] = np.asarray(v, dtype=np.float32)
            if progress:
                progress(min(i + step, len(missing)), len(missing))
        self.seconds += time.perf_counter() - t0
        if not keys:
            return np.zeros((0, embedder.dim), dtype=np.float32)
        return np.vstack([self.vectors[k] for k in keys]).astype(np.float32)

    def save(self, folder: Path, texts: Sequence[str]) -> None:
        """Write the vectors of `texts` (the corpus's current texts; the rest is dropped) to folder/cache.npz."""
        keys = list(dict.fromkeys(key(self.embedder_name, t) for t in texts))
        keys = [k for k in keys if k in self.vectors]
        dim = next(iter(self.vectors.values())).shape[0] if self.vectors else 0
        matrix = np.vstack([self.vectors[k] for k in keys]) if keys else np.zeros((0, dim), dtype=np.float32)
        np.savez(Path(folder) / FILE, embedder=np.array(self.embedder_name), keys=np.array(keys, dtype="S20"),
                 vectors=matrix.astype(np.float32))
