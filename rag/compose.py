"""Chosen units → the answer text and its citations, in the asker's script, naming the document as its metadata
says (a speech, a report, its title); and the texts of refusals. Phrasing lives in prompts/extractive.json."""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .domain import GENERIC_KIND, DocMeta, Domain
from .settings import ROOT
from .text import normalize, s2t, t2s
from .types import Chunk, Citation
from .units import UnitIndex

PROMPTS = ROOT / "prompts"


@functools.lru_cache(maxsize=1)
def phrases() -> dict:
    """User-facing phrasing per script (prompts/extractive.json)."""
    return json.loads((PROMPTS / "extractive.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Draft:
    """An engine's answer before it becomes an Answer."""

    text: str
    citations: tuple[Citation, ...]
    refused: bool = False
    engine: str = "extractive"
    notice: str = ""
    verification: Mapping[str, Any] | None = None  # an LLM answer's claim-by-claim verification (rag.verify)


def display(text: str, script: str) -> str:
    """A verbatim quote rendered for the asker: their script, full-width punctuation for Chinese readers."""
    if script == "hant":
        shown = text if t2s(text) != text or s2t(text) == text else s2t(text)  # Traditional sources stay verbatim
    else:
        shown = t2s(text)
    return shown.replace(",", "，").replace(";", "；")


def _strip_end(text: str) -> str:
    return re.sub(r"[,，。；;、:：\s]+$", "", text)


def doc_names(meta: DocMeta, script: str, several: bool) -> dict[str, str]:
    """How a reply names a document: its kind alone when it is the corpus's only one (讲话, 报告), else its title."""
    if script == "en":
        title = meta.title
        ref = f"the {meta.kind_en} “{title}”" if several and title else f"the {meta.kind_en}"
        return {"doc": ref, "Doc": ref[0].upper() + ref[1:], "scope": ref}
    ph = phrases()[script]
    kind = display(meta.kind or GENERIC_KIND, script)
    title = display(meta.title, script) if meta.title and meta.title != meta.doc_id else ""
    ref = f"《{title}》" if several and title else kind
    scope = ph["scope_titled"].format(kind=kind, title=title) if title else ph["scope"].format(kind=kind)
    return {"doc": ref, "Doc": ref, "scope": scope}


def citations(units: list[tuple[int, Chunk]], uidx: UnitIndex) -> tuple[Citation, ...]:
    """Numbered citations of chosen units in document order; consecutive units of one passage become one
    contiguous quote."""
    spans: list[list] = []  # [chunk, doc_id, start, end, last unit]
    for i, chunk in sorted(units, key=lambda p: p[0]):
        u = uidx.units[i]
        last = spans[-1] if spans else None
        if last and last[0].id == chunk.id and last[4] == i - 1:
            last[3], last[4] = u.end, i
        else:
            spans.append([chunk, u.doc_id, u.start, u.end, i])
    docs = uidx.index.documents
    return tuple(Citation(n, chunk, docs[doc_id].text[start:end], start, end)
                 for n, (chunk, doc_id, start, end, _) in enumerate(spans, start=1))


def quotes(cits: tuple[Citation, ...], script: str, domain: Domain) -> str:
    """The quoted sentences with their markers; quotes of different documents name their document first."""
    ph = phrases()[script]
    several = len({c.chunk.doc_id for c in cits}) > 1
    parts, last_doc = [], None
    for c in cits:
        shown = f"{_strip_end(display(c.quote, script))}[{c.n}]"
        if several and c.chunk.doc_id != last_doc:
            shown = ph["from_doc"].format(doc=doc_names(domain.meta(c.chunk.doc_id), script, True)["doc"]) + shown
        last_doc = c.chunk.doc_id
        parts.append(f"“{shown}”" if script == "en" and not several else shown)
    if script == "en":
        return "\n".join(parts)
    return ph["sep"].join(parts) + ph["end"]


def where_en(cits: tuple[Citation, ...]) -> str:
    ph = phrases()["en"]
    ps = sorted({c.chunk.paragraph + 1 for c in cits})
    if len(ps) == 1:
        return ph["where_one"].format(p=ps[0])
    return ph["where_many"].format(ps=", ".join(map(str, ps[:-1])) + f" and {ps[-1]}")


def _names(cits: tuple[Citation, ...], script: str, domain: Domain) -> dict[str, str]:
    docs = {c.chunk.doc_id for c in cits}
    meta = domain.meta(next(iter(docs)) if len(docs) == 1 else None)
    return doc_names(meta, script, len(domain.docs) > 1 and len(docs) == 1)


def answer_text(key: str, cits: tuple[Citation, ...], script: str, domain: Domain, **values: str) -> str:
    """A lead phrase (prompts/extractive.json[script][key]) followed by the quotes."""
    ph = phrases()[script]
    names = _names(cits, script, domain)
    topic = values.pop("topic", "") or (ph.get("topic_default", "") if script == "en" else "")
    lead = ph[key].format(**names, topic=topic, where=where_en(cits) if script == "en" and cits else "", **values)
    body = quotes(cits, script, domain)
    return f"{lead}\n{body}" if script == "en" else lead + body


def english_topic(text_norm: str, domain: Domain) -> str:
    return domain.english_name(text_norm) or phrases()["en"]["topic_default"]


def refusal_text(cits: tuple[Citation, ...], script: str, domain: Domain, *, off_topic: bool, topic: str,
                 asks: str, attribute: str) -> str:
    """'The document does not say …' naming the asked attribute or kind and the topic, then the closest quotes."""
    ph = phrases()[script]
    names = _names(cits, script, domain) if cits else doc_names(domain.meta(), script, False)
    if off_topic or not cits:
        return ph["off_topic"].format(**names)
    if script == "en":
        shown_topic = english_topic(normalize(topic), domain) if topic else ph["topic_default"]
        kind = ph["kinds"].get(asks, "")
        key = "not_covered_kind" if kind else "not_covered"
        return answer_text(key, cits, script, domain, topic=shown_topic, kind=kind)
    shown = display(topic, script) if topic else ""
    if shown and attribute:
        return answer_text("not_covered_detail", cits, script, domain, topic=shown, detail=display(attribute, script))
    if shown and asks:
        return answer_text("not_covered_kind", cits, script, domain, topic=shown, kind=ph["kinds"][asks])
    return answer_text("not_covered", cits, script, domain)


def injection_text(script: str, domain: Domain) -> str:
    """The reply to a request to break the rules."""
    return phrases()[script]["injection"].format(**doc_names(domain.meta(), script, False))
