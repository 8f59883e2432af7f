"""A corpus's own knowledge, as data: mined from the documents at index time or declared in files beside them.

Nothing here names a term of any document. What a corpus knows comes from:
- its documents: quoted terms (“…”), the members of 、-lists, headings, frequent multi-character strings, and each
  document's title / byline / kind / speaker read off its first lines (generic rules, recorded with how);
- optional files beside the corpus, each with its provenance:
    <stem>.meta.json   {"title", "kind", "speaker", "role", "place", "date", "_source"} for one document
    domain.json        {"_provenance", "synonyms": [{"ask": [...], "means": [...]}],
                        "glossary": [{"en": [regex...], "zh": "...", "name": "..."}], "self": [...], "examples": [...]}
    (or <stem>.domain.json for a single-document corpus given as a file).
The mined and declared knowledge is saved in the index as domain.json and recorded in its manifest.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from .errors import CorpusError
from .text import CJK, normalize, t2s
from .types import Document

DOMAIN_VERSION = 1
# Kinds of Chinese official documents, and their English names: language knowledge, not any corpus's.
KINDS = {"讲话": "speech", "发言": "speech", "致辞": "speech", "报告": "report", "方案": "plan", "规划": "plan",
         "纲要": "outline", "意见": "opinion", "通知": "notice", "办法": "measures", "决定": "decision",
         "条例": "regulation", "公告": "announcement", "通告": "announcement", "措施": "measures", "计划": "plan",
         "细则": "rules", "指南": "guide", "白皮书": "white paper", "公报": "communique"}
GENERIC_KIND = "文件"
# Official titles that end a byline ("…局长某某"): language knowledge of Chinese bylines.
_ROLES = "局长|副局长|主任|副主任|书记|副书记|市长|副市长|省长|副省长|县长|区长|部长|副部长|厅长|处长|院长|校长|主席|总理|" \
         "副总理|委员长|委员|理事长|董事长|总经理|秘书长|署长|行长|会长"
_BYLINE = re.compile(rf"^(?P<role>[{CJK}]{{1,20}}?(?:{_ROLES}))(?P<name>[{CJK}]{{2,3}})$")
_SALUTATION = re.compile(r"[：:]\s*$")  # "各位代表：" opens a speech; it is no title
_QUOTED = re.compile(r"[“「『《\"]([^”」』》\"\n]{2,16})[”」』》\"]")
_HEADING = re.compile(rf"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|第[一二三四五六七八九十]+[部章节条]分?|[0-9]+[.、．])")
# characters that rarely begin or end a term (function words), for mining frequent strings
_EDGE = set("的了和与及或在是有为对从向把被将而并也都就还又这那其之以于")


@dataclass(frozen=True)
class DocMeta:
    """How replies and cards name one document, and where each value came from."""

    doc_id: str
    title: str
    kind: str = GENERIC_KIND  # 讲话 / 报告 / 方案 … (Chinese); `kind_en` for English replies
    kind_en: str = "document"
    speaker: str = ""
    role: str = ""
    place: str = ""
    date: str = ""
    source: Mapping[str, str] = field(default_factory=dict)  # field → "metadata file" | "byline" | "first line" …


@dataclass(frozen=True)
class GlossaryEntry:
    """English wording (regular expressions) for one Chinese term, and its English name."""

    en: tuple[str, ...]
    zh: str
    name: str = ""


@dataclass(frozen=True)
class Domain:
    """Everything the engine knows about one corpus; built at index time, loaded with the index."""

    terms: tuple[str, ...] = ()  # normalised (Simplified) terms, longest first
    term_source: Mapping[str, str] = field(default_factory=dict)  # term → quoted | list | heading | frequent | declared
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # asker's word → the corpus's terms
    glossary: tuple[GlossaryEntry, ...] = ()
    self_words: frozenset[str] = frozenset()  # words that name the documents themselves (kind, speaker, place…)
    docs: Mapping[str, DocMeta] = field(default_factory=dict)
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group label → example questions
    title: str = ""  # what the app calls the corpus (declared), e.g. a city's policy library
    provenance: Mapping[str, str] = field(default_factory=dict)  # declared file → its _provenance note

    def english_terms(self, question: str) -> list[str]:
        """The Chinese terms an English question's words stand for (declared glossary), in glossary order."""
        q = question.lower()
        out: list[str] = []
        for entry in self.glossary:
            if any(re.search(p, q) for p in entry.en) and entry.zh not in out:
                out.append(entry.zh)
        return out

    def english_name(self, text_norm: str) -> str:
        """An English name for the most specific glossary term a (normalised) text holds, or ''."""
        named = [e for e in self.glossary if e.name and normalize(e.zh) in text_norm]
        return max(named, key=lambda e: len(e.zh)).name if named else ""

    def expand(self, question_norm: str) -> list[str]:
        """The corpus's terms for the asker's words that the declared synonyms know, not already in the question."""
        out: list[str] = []
        for word, means in self.synonyms.items():
            if word in question_norm:
                out.extend(t for t in means if t not in out and t not in question_norm)
        return out

    def meta(self, doc_id: str | None = None) -> DocMeta:
        """One document's metadata; with no id, the corpus's only document or a generic description."""
        if doc_id and doc_id in self.docs:
            return self.docs[doc_id]
        if len(self.docs) == 1:
            return next(iter(self.docs.values()))
        return DocMeta("", "", GENERIC_KIND, "document")


# --- reading documents' own descriptions -------------------------------------------------------------------------


def _first_lines(doc: Document, n: int = 3) -> list[str]:
    return [line.strip() for line in doc.text.split("\n")[:n] if line.strip()]


def _kind_in(text: str, last: bool = True) -> str:
    """The document kind a text names: the last kind word of a title ("…的实施意见"), or the first of an opening
    ("我代表国务院，向大会报告政府工作，…提出意见"); '' when it names none."""
    found = sorted((m.start(), k) for k in KINDS for m in re.finditer(k, t2s(text)))
    return (found[-1] if last else found[0])[1] if found else ""


def _from_header(header: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Title, date, speaker and role from a scraped page's title block (rag.text.split_header), and from which line."""
    values, source = {}, {}
    for line in (t2s(x) for x in header):
        flat = re.sub(r"\s+", "", line)
        date = re.search(r"((?:19|20)[0-9]{2})年([0-9]{1,2})月([0-9]{1,2})日", flat)
        byline = _BYLINE.match(flat)
        if date and "date" not in values:
            values["date"] = f"{date.group(1)}-{int(date.group(2)):02d}-{int(date.group(3)):02d}"
            source["date"] = "title block"
        elif byline and "speaker" not in values:
            values |= {"role": byline.group("role"), "speaker": byline.group("name")}
            source |= {"role": "title block", "speaker": "title block"}
        elif "title" not in values and _kind_in(flat):
            values["title"] = flat
            source["title"] = "title block"
    return values, source


def read_meta(doc: Document, declared: Mapping[str, str] | None = None) -> DocMeta:
    """A document's title, kind, speaker and date: the declared values first, then its title block (a scraped
    page's), then what its first lines say (a byline "…局长某某", a title line, the kind word of its opening)."""
    declared = dict(declared or {})
    source = {k: "metadata file" for k in declared if not k.startswith("_") and declared[k]}
    found, found_source = _from_header(list(doc.header))
    lines = _first_lines(doc)
    first = t2s(lines[0]) if lines else ""
    byline = _BYLINE.match(first)
    if byline and "speaker" not in found:
        found |= {"role": byline.group("role"), "speaker": byline.group("name"), "title": found.get("title", first)}
        found_source |= {"role": "byline", "speaker": "byline", "title": found_source.get("title", "byline")}
    elif "title" not in found and first and len(first) <= 40 and not _SALUTATION.search(first) \
            and not re.search("[。！？；]", first):
        found["title"], found_source["title"] = first, "first line"
    head = " ".join(t2s(x) for x in lines[:3])[:400]
    title = found.get("title", "")
    kind = _kind_in(title) or ("讲话" if byline else "") or _kind_in(head, last=False)
    if kind:
        found_source["kind"] = "title" if _kind_in(title) else ("byline" if byline else "opening lines")
    if "date" not in found:
        years = re.findall(r"(?<![0-9])((?:19|20)[0-9]{2})(?![0-9])", doc.id + " " + head)
        if years:
            found["date"], found_source["date"] = years[0], "file name or opening lines"
    values = {"title": "", "kind": kind or GENERIC_KIND, "speaker": "", "role": "", "place": "", "date": ""}
    values |= found
    values.update({k: t2s(str(v)) for k, v in declared.items() if k in values and v})
    source = {**found_source, **source}
    if not values["title"]:
        values["title"] = doc.id
        source.setdefault("title", "file name")
    return DocMeta(doc.id, values["title"], values["kind"], KINDS.get(values["kind"], "document"), values["speaker"],
                   values["role"], values["place"], values["date"], source)


# --- mining terms --------------------------------------------------------------------------------------------------


def quoted_terms(text_norm: str) -> list[str]:
    """Terms the documents themselves put in quotation marks or title marks."""
    return [m.group(1) for m in _QUOTED.finditer(text_norm) if re.search(f"[{CJK}]", m.group(1))]


def list_members(text_norm: str) -> list[str]:
    """The members of 、-lists (two to twelve characters each), e.g. the items of “A、B、C”."""
    out = []
    for clause in re.split(r"[，,。；;：:！？!?\n（）()“”]", text_norm):
        if clause.count("、") < 1:
            continue
        for item in clause.split("、"):
            item = re.sub("等(方面|领域)?$", "", item).lstrip("".join(_EDGE))
            if 2 <= len(item) <= 12 and re.fullmatch(f"[{CJK}0-9a-z]+", item):
                out.append(item)
    return out


def frequent_strings(text_norm: str, min_count: int, lengths: Iterable[int] = range(3, 11)) -> list[str]:
    """Multi-character strings repeated at least `min_count` times that stand on their own: they start and end on
    word boundaries (jieba's) in most of their occurrences, they are not always preceded or always followed by the
    same character (else they are a piece of a longer string), and they neither start nor end on a function word."""
    from .text import _jieba

    jb = _jieba()
    counts: Counter[str] = Counter()
    aligned: Counter[str] = Counter()
    left: dict[str, set[str]] = {}
    right: dict[str, set[str]] = {}
    for run in re.findall(f"[{CJK}]+", text_norm):
        cuts, pos = {0}, 0
        for w in jb.lcut(run):
            pos += len(w)
            cuts.add(pos)
        for n in lengths:
            for i in range(len(run) - n + 1):
                s = run[i : i + n]
                counts[s] += 1
                aligned[s] += i in cuts and i + n in cuts
                left.setdefault(s, set()).add(run[i - 1] if i > 0 else "^")
                right.setdefault(s, set()).add(run[i + n] if i + n < len(run) else "$")
    return [s for s, c in counts.items()
            if c >= min_count and 2 * aligned[s] >= c and s[0] not in _EDGE and s[-1] not in _EDGE
            and len(left[s]) > 1 and len(right[s]) > 1]


def headings(doc: Document) -> list[str]:
    """Numbered headings (一、… （一）… 第一… 1.) of a document, normalised."""
    out = []
    for line in doc.text.split("\n"):
        norm = normalize(line)
        if _HEADING.match(norm) and len(norm) <= 40:
            out.append(_HEADING.sub("", norm).rstrip("。：:"))
    return out


def mine_terms(docs: list[Document]) -> dict[str, str]:
    """{term: how it was found} for the documents: quoted, list members, headings, frequent strings."""
    terms: dict[str, str] = {}
    text = "\n".join(normalize(d.text) for d in docs)
    for t in quoted_terms(text):
        terms.setdefault(t, "quoted")
    for t in list_members(text):
        terms.setdefault(t, "list")
    for d in docs:
        for h in headings(d):
            if 2 <= len(h) <= 16:
                terms.setdefault(h, "heading")
    for t in frequent_strings(text, min_count=3 if len(text) > 20_000 else 2):
        terms.setdefault(t, "frequent")
    return terms


# --- declared files --------------------------------------------------------------------------------------------------


def declared_files(corpus: Path) -> list[Path]:
    """The knowledge files beside a corpus (a folder, or a single document file)."""
    corpus = Path(corpus)
    if corpus.is_file():
        folder, stems = corpus.parent, [corpus.stem]
        names = [f"{corpus.stem}.meta.json", f"{corpus.stem}.domain.json"]
    else:
        folder = corpus
        stems = [p.stem for p in corpus.iterdir() if p.suffix.lower() in (".txt", ".md")] if corpus.is_dir() else []
        names = ["domain.json"] + [f"{s}.meta.json" for s in stems] + [f"{s}.domain.json" for s in stems]
    return sorted(p for p in (folder / n for n in names) if p.is_file())


def declared_hashes(corpus: Path) -> dict[str, str]:
    """{file name: sha256} of the declared knowledge files: part of the index manifest (a change makes it stale)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in declared_files(corpus)}


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path} is not readable JSON ({exc}); fix it or remove it from the corpus folder") from None
    if not isinstance(data, dict):
        raise CorpusError(f"{path} must hold a JSON object")
    return data


def _declared(corpus: Path) -> tuple[dict[str, dict], list[dict], dict[str, str]]:
    """(per-document metadata, knowledge blocks, provenance notes) of the files beside a corpus."""
    metas, blocks, provenance = {}, [], {}
    for path in declared_files(corpus):
        data = _read_json(path)
        note = str(data.get("_provenance") or data.get("_source") or "")
        if not note:
            raise CorpusError(f"{path} has no _provenance note; say who wrote it and from what")
        provenance[path.name] = note
        if path.name.endswith(".meta.json"):
            metas[path.name[: -len(".meta.json")]] = data
        elif path.name.endswith(".domain.json"):  # one document's knowledge: no say in the corpus's title or examples
            blocks.append({k: v for k, v in data.items() if k not in ("title", "examples")})
        else:
            blocks.append(data)
    return metas, blocks, provenance


def _synonyms(blocks: list[dict]) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for block in blocks:
        for entry in block.get("synonyms") or []:
            means = [normalize(t) for t in entry.get("means") or [] if normalize(t)]
            for word in entry.get("ask") or []:
                w = normalize(word)
                if w:
                    out.setdefault(w, [])
                    out[w].extend(t for t in means if t not in out[w])
    return {k: tuple(v) for k, v in out.items()}


def _glossary(blocks: list[dict]) -> tuple[GlossaryEntry, ...]:
    entries = []
    for block in blocks:
        for e in block.get("glossary") or []:
            patterns = tuple(str(p).lower() for p in e.get("en") or [])
            for p in patterns:
                try:
                    re.compile(p)
                except re.error as exc:
                    raise CorpusError(f"glossary pattern {p!r} is not a valid regular expression ({exc})") from None
            if e.get("zh"):  # an entry without patterns only names the term in English replies
                entries.append(GlossaryEntry(patterns, normalize(e["zh"]), str(e.get("name") or "")))
    return tuple(entries)


def build_domain(docs: list[Document], corpus: Path) -> Domain:
    """Mine the documents and read the declared files into one Domain (what the index saves as domain.json)."""
    metas, blocks, provenance = _declared(corpus)
    docs_meta = {d.id: read_meta(d, metas.get(d.id)) for d in docs}
    terms = mine_terms(docs)
    corpus_norm = "\n".join(normalize(d.text) for d in docs)
    for block in blocks:
        for t in block.get("terms") or []:
            terms[normalize(t)] = "declared"
    synonyms = _synonyms(blocks)
    for means in synonyms.values():
        for t in means:
            if t in corpus_norm:
                terms.setdefault(t, "declared")
    glossary = _glossary(blocks)
    for e in glossary:
        if e.zh in corpus_norm:
            terms.setdefault(e.zh, "declared")
    self_words = {normalize(w) for b in blocks for w in b.get("self") or [] if normalize(w)}
    for m in docs_meta.values():  # what names a document in a question is no topic of it: kind, speaker, date, title
        self_words |= {normalize(x) for x in (m.kind, m.speaker, m.role, m.place, m.date) if x and x != GENERIC_KIND}
        if m.title and m.title != m.doc_id and len(m.title) <= 20:
            self_words.add(normalize(m.title))
    examples: dict[str, tuple[str, ...]] = {}
    for b in blocks:
        for label, questions in (b.get("examples") or {}).items():
            examples[str(label)] = examples.get(str(label), ()) + tuple(str(x) for x in questions)
    ordered = tuple(sorted(terms, key=lambda t: (-len(t), t)))
    title = next((str(b["title"]) for b in blocks if b.get("title")), "")
    return Domain(ordered, {t: terms[t] for t in ordered}, synonyms, glossary, frozenset(self_words), docs_meta,
                  examples, title, provenance)


# --- persistence ------------------------------------------------------------------------------------------------------


def domain_to_json(domain: Domain) -> dict:
    return {"version": DOMAIN_VERSION, "terms": domain.term_source,
            "synonyms": {k: list(v) for k, v in domain.synonyms.items()},
            "glossary": [asdict(e) for e in domain.glossary], "self_words": sorted(domain.self_words),
            "docs": {k: asdict(v) for k, v in domain.docs.items()},
            "examples": {k: list(v) for k, v in domain.examples.items()}, "title": domain.title,
            "provenance": dict(domain.provenance)}


def domain_from_json(data: Mapping) -> Domain:
    terms = dict(data.get("terms") or {})
    ordered = tuple(sorted(terms, key=lambda t: (-len(t), t)))
    return Domain(ordered, terms, {k: tuple(v) for k, v in (data.get("synonyms") or {}).items()},
                  tuple(GlossaryEntry(tuple(e["en"]), e["zh"], e.get("name", "")) for e in data.get("glossary") or []),
                  frozenset(data.get("self_words") or ()),
                  {k: DocMeta(**v) for k, v in (data.get("docs") or {}).items()},
                  {k: tuple(v) for k, v in (data.get("examples") or {}).items()}, str(data.get("title") or ""),
                  dict(data.get("provenance") or {}))


# --- a tokenizer that keeps the corpus's terms whole -----------------------------------------------------------------

_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def tokenizer(terms: tuple[str, ...]):
    """A jieba tokenizer of its own (the lexical index's jieba stays untouched) that keeps `terms` whole."""
    import jieba

    from .text import _jieba

    base = _jieba().dt
    with _LOCK:
        jb = jieba.Tokenizer()
        jb.FREQ, jb.total, jb.initialized = dict(base.FREQ), base.total, True
        for t in terms:
            if 2 <= len(t) <= 12:
                jb.add_word(t, freq=max(base.FREQ.get(t, 0), 50_000))
    return jb
