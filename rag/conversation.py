"""The state of a conversation, rebuilt from its history on every question (the server keeps no session): which
units the last answers quoted, the list each of them showed, the topic they were about, and the section holding it."""
from __future__ import annotations

import re
from dataclasses import dataclass

from .lexicon import Lexicon
from .outline import Node
from .question import content_terms
from .text import detect_script, normalize, to_simplified_question
from .units import UnitIndex, bigrams

# a unit counts as quoted by an answer when this share of its bigrams is in the answer's text
QUOTED_SHARE = 0.6
# how many turns back a list or a topic is looked for
LOOK_BACK = 3
LIST_KINDS = ("list", "document", "section", "part")


@dataclass(frozen=True)
class State:
    """What the conversation so far carries into the next question."""

    units: frozenset[int] = frozenset()  # units the last answer quoted
    listing: tuple[int, ...] = ()  # outline nodes of the list an answer showed, in order
    list_title: str = ""  # what that list is
    topic: tuple[str, ...] = ()  # the topic words carried over
    section: int | None = None  # the outline node (section or part) holding the last quoted units
    topic_span: tuple[str, int, int] | None = None  # that section's (document, start, end)

    @property
    def empty(self) -> bool:
        return not (self.units or self.listing or self.topic)


def quoted_units(uidx: UnitIndex, answer_text: str) -> frozenset[int]:
    """The units an answer quoted (or paraphrased closely)."""
    said = set(bigrams(normalize(answer_text)))
    if not said:
        return frozenset()
    return frozenset(i for i, grams in enumerate(uidx.grams)
                     if len(grams) >= 4 and len(grams & said) / len(grams) >= QUOTED_SHARE)


def entries(node: Node, outline: tuple[Node, ...]) -> list[Node]:
    """The entries a node lists: a list's members, else its sections, parts or items."""
    kids = [outline[c] for c in node.children]
    members = [k for k in kids if k.kind == "member"]
    return members or [k for k in kids if k.kind in ("section", "part", "item")]


_MARKER = re.compile(r"^(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十]+[）)]|[0-9]{1,2}[.、．]|[一二三四五六七八九十]是|"
                     r"首先|其次|再次|最后)")


def _label(node: Node) -> str:
    """The words an answer showing this entry would contain: its heading without its number or series marker,
    shortened."""
    return _MARKER.sub("", normalize(node.title))[:8]


def shown_list(answer_text: str, outline: tuple[Node, ...]) -> tuple[Node, list[Node]] | None:
    """The list an answer showed: the one most of whose entries (at least two) it names."""
    said = normalize(answer_text)
    best, best_shown = None, 1
    for node in outline:
        if node.kind not in LIST_KINDS:
            continue
        items = entries(node, outline)
        shown = sum(1 for e in items if _label(e) and _label(e) in said)
        if len(items) >= 2 and shown > best_shown:
            best, best_shown = (node, items), shown
    return best


def section_holding(unit_start: int, doc_id: str, outline: tuple[Node, ...]) -> int | None:
    """The innermost section or part that holds a position of a document."""
    holding = [n for n in outline if n.doc_id == doc_id and n.kind in ("section", "part", "passage")
               and n.start <= unit_start < n.end]
    return max(holding, key=lambda n: n.level).id if holding else None


def _topic(question: str, units: frozenset[int], uidx: UnitIndex, lexicon: Lexicon) -> tuple[str, ...]:
    """The words of an earlier question that its answer's quotes hold (else those the corpus holds)."""
    norm = normalize(to_simplified_question(question))
    terms = content_terms(norm, detect_script(question), lexicon)
    quoted = "".join(uidx.units[i].norm for i in units)
    return tuple(t for t in terms if t in quoted) or tuple(t for t in terms if lexicon.has(t))


def rebuild(history, uidx: UnitIndex, outline: tuple[Node, ...], lexicon: Lexicon) -> State:
    """The state after the given [user, assistant] turns (oldest first)."""
    turns = [(str(u), str(a)) for u, a in (history or ())][-LOOK_BACK:]
    if not turns:
        return State()
    units = quoted_units(uidx, turns[-1][1])
    listing, title, topic = (), "", ()
    for question, answer in reversed(turns):
        if not listing and (found := shown_list(answer, outline)):
            listing, title = tuple(e.id for e in found[1]), found[0].title
        if not topic:
            topic = _topic(question, quoted_units(uidx, answer), uidx, lexicon)
    section, span = None, None
    if units:
        first = uidx.units[min(units)]
        section = section_holding(first.start, first.doc_id, outline)
        if section is not None:
            span = (first.doc_id, outline[section].start, outline[section].end)
    return State(units, listing, title, topic, section, span)
