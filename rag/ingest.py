"""Corpus folder → cleaned documents with stable ids."""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from .errors import CorpusError
from .text import clean_document
from .types import Document

log = logging.getLogger(__name__)
SUFFIXES = (".txt", ".md")


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The document files of a corpus folder (or a single document file), sorted; CorpusError when there are none."""
    corpus_dir = Path(corpus_dir)
    if corpus_dir.is_file() and corpus_dir.suffix.lower() in SUFFIXES:
        return [corpus_dir]
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} does not exist; set RAG_CORPUS_DIR or --corpus to a folder of .txt/.md files")
    # a corpus folder's README describes the folder; it is not one of its documents
    files = sorted(p for p in corpus_dir.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES
                   and not p.name.lower().startswith("readme"))
    if not files:
        raise CorpusError(f"corpus folder {corpus_dir} has no .txt or .md files; copy the policy documents there")
    return files


def load_document(path: Path) -> Document:
    """Read and clean one file; id is the file stem, title its first non-empty line."""
    try:
        raw_bytes = path.read_bytes()
        raw = raw_bytes.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorpusError(f"cannot read {path} as UTF-8 text ({exc}); convert it to UTF-8") from None
    text, header = clean_document(raw)
    if not text:
        raise CorpusError(f"{path} is empty after cleaning; remove it from the corpus folder")
    title = header[0] if header else text.split("\n", 1)[0]
    return Document(id=path.stem, title=title, text=text, path=str(path), sha256=hashlib.sha256(raw_bytes).hexdigest(),
                    header=tuple(header))


def load_corpus(corpus_dir: Path) -> list[Document]:
    """Every document of the corpus folder, cleaned, in file-name order."""
    docs = [load_document(p) for p in corpus_files(corpus_dir)]
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        raise CorpusError(f"two corpus files share a stem in {corpus_dir}; document ids must be unique")
    log.debug("loaded %d documents from %s", len(docs), corpus_dir)
    return docs


def corpus_hashes(corpus_dir: Path) -> dict[str, str]:
    """{document id: sha256 of the raw file}: what the manifest compares to detect a changed corpus."""
    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in corpus_files(corpus_dir)}
