"""Validate the evaluation datasets (eval/dataset.jsonl, eval/other_voices.jsonl, eval/dev/*.jsonl) against their cleaned
documents.

Every per-item check is parametrised by item id, so a failure names the offending item.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.ingest import load_corpus  # noqa: E402
from rag.text import clean, detect_script, t2s  # noqa: E402

DATASET = ROOT / "eval" / "dataset.jsonl"
CORPUS_DIR = ROOT / "data" / "corpus"
DOC_FILE = CORPUS_DIR / "wenzhou-2023-sci-tech-plan.txt"

MIN_ITEMS = 100
REQUIRED_KEYS = {
    "id", "question", "history", "category", "lang", "answerable",
    "expected_behavior", "gold_evidence", "must_include", "must_not_include", "reference_answer",
}
CATEGORIES = {
    "fact", "paraphrase", "financing", "list", "multi_hop", "follow_up", "traditional",
    "english", "unanswerable", "off_topic", "injection", "injection_in_question",
}
LANGS = {"zh-Hans": "hans", "zh-Hant": "hant", "en": "en"}
BEHAVIORS = {"answer", "answer_ignore_injection", "abstain", "refuse"}
ANSWERING = {"answer", "answer_ignore_injection"}
NO_EVIDENCE_CATEGORIES = {"off_topic", "injection"}
# categories whose behaviour is fixed by the category itself
CATEGORY_BEHAVIOR = {
    "unanswerable": "abstain",
    "off_topic": "abstain",
    "injection": "refuse",
    "injection_in_question": "answer_ignore_injection",
}
SENTENCE_ENDS = "。；;！？!?\n"


def _ns(text: str) -> str:
    """Whitespace removed: the comparison form for evidence and key terms."""
    return re.sub(r"\s+", "", text)


def _cmp(text: str) -> str:
    """Comparison form for answers: Simplified, no whitespace, lower case."""
    return _ns(t2s(text)).lower()


# --- the document ------------------------------------------------------------------------------

DOC = t2s(clean(DOC_FILE.read_text(encoding="utf-8")))
DOC_NS = _ns(DOC)
PARAGRAPHS = [_ns(line) for line in DOC.split("\n") if line.strip()]


# --- the dataset (loaded at import so items can be parametrised) --------------------------------


def _load_items() -> tuple[list[dict], list[str]]:
    items, errors = [], []
    if not DATASET.is_file():
        return items, [f"{DATASET} does not exist"]
    for n, line in enumerate(DATASET.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            errors.append(f"line {n} is blank")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"line {n} is not valid JSON: {exc}")
            continue
        if not isinstance(obj, dict):
            errors.append(f"line {n} is not a JSON object")
            continue
        items.append(obj)
    return items, errors


ITEMS, LOAD_ERRORS = _load_items()
IDS = [str(it.get("id", f"line{n}")) for n, it in enumerate(ITEMS, 1)]
per_item = pytest.mark.parametrize("item", ITEMS, ids=IDS)


# --- whole-file checks -------------------------------------------------------------------------


def test_corpus_loader_agrees_with_direct_cleaning():
    docs = {d.id: d for d in load_corpus(CORPUS_DIR)}
    assert DOC_FILE.stem in docs
    assert t2s(docs[DOC_FILE.stem].text) == DOC
    assert len(PARAGRAPHS) == 7, "expected a title line and six paragraphs"


def test_file_parses():
    assert not LOAD_ERRORS, LOAD_ERRORS


def test_enough_items():
    assert len(ITEMS) >= MIN_ITEMS, f"only {len(ITEMS)} items"


def test_ids_unique():
    dup = [i for i, c in Counter(IDS).items() if c > 1]
    assert not dup, f"duplicate ids: {dup}"


def test_every_category_present():
    present = {it.get("category") for it in ITEMS}
    assert CATEGORIES <= present, f"missing categories: {sorted(CATEGORIES - present)}"


def test_every_language_present():
    assert set(LANGS) <= {it.get("lang") for it in ITEMS}


def test_every_paragraph_covered_by_answerable_evidence():
    evidence = [_ns(ev) for it in ITEMS if it.get("answerable") is True for ev in it.get("gold_evidence", [])]
    uncovered = [n for n, par in enumerate(PARAGRAPHS) if not any(ev and ev in par for ev in evidence)]
    assert not uncovered, f"paragraphs (0 = title line) without answerable evidence: {uncovered}"


def test_both_answerable_and_unanswerable_items():
    counts = Counter(it.get("answerable") for it in ITEMS)
    assert counts[True] > 0 and counts[False] > 0


# --- per-item checks ---------------------------------------------------------------------------


@per_item
def test_schema(item):
    assert set(item) == REQUIRED_KEYS, f"keys differ: missing {REQUIRED_KEYS - set(item)}, extra {set(item) - REQUIRED_KEYS}"
    assert isinstance(item["id"], str) and re.fullmatch(r"q\d{3,}", item["id"])
    assert isinstance(item["question"], str) and item["question"].strip()
    assert isinstance(item["history"], list)
    assert isinstance(item["answerable"], bool)
    for key in ("gold_evidence", "must_include", "must_not_include"):
        assert isinstance(item[key], list), key
        assert all(isinstance(s, str) and s.strip() for s in item[key]), f"{key} must hold non-empty strings"
        assert len(set(item[key])) == len(item[key]), f"{key} has duplicates"
    assert isinstance(item["reference_answer"], str) and item["reference_answer"].strip()


@per_item
def test_labels(item):
    cat, behavior = item["category"], item["expected_behavior"]
    assert cat in CATEGORIES
    assert item["lang"] in LANGS
    assert behavior in BEHAVIORS
    assert item["answerable"] == (behavior in ANSWERING), "answerable must match expected_behavior"
    if cat in CATEGORY_BEHAVIOR:
        assert behavior == CATEGORY_BEHAVIOR[cat], f"{cat} items must be {CATEGORY_BEHAVIOR[cat]}"
    else:
        assert behavior in {"answer", "abstain"}, f"{cat} items are answered or abstained on"


@per_item
def test_history(item):
    history = item["history"]
    for turn in history:
        assert isinstance(turn, list) and len(turn) == 2, "each history turn is [user, assistant]"
        assert all(isinstance(s, str) and s.strip() for s in turn)
    if item["category"] == "follow_up":
        assert 1 <= len(history) <= 2, "a follow-up has 1-2 earlier turns"
    else:
        assert history == [], "only follow_up items carry history"


@per_item
def test_language(item):
    q, lang = item["question"], item["lang"]
    assert detect_script(q) == LANGS[lang], f"question looks like {detect_script(q)}, labelled {lang}"
    if lang == "zh-Hant":
        assert t2s(q) != q, "a zh-Hant question must really use Traditional characters"
        assert t2s(item["reference_answer"]) != item["reference_answer"], "zh-Hant reference answer in Traditional"
    elif lang == "zh-Hans":
        assert t2s(q) == q, "a zh-Hans question must not contain Traditional characters"
    else:
        assert len(re.findall(r"[A-Za-z]", item["reference_answer"])) >= 20, "English reference answer"


@per_item
def test_gold_evidence(item):
    evidence = item["gold_evidence"]
    if item["category"] in NO_EVIDENCE_CATEGORIES:
        assert evidence == [], f"{item['category']} items carry no evidence"
        return
    assert 1 <= len(evidence) <= 3, "1-3 evidence passages required"
    if item["category"] == "unanswerable":
        assert len(evidence) == 1, "unanswerable items show exactly one related passage"
    for ev in evidence:
        ev_ns = _ns(ev)
        assert 8 <= len(ev_ns) <= 40, f"evidence length {len(ev_ns)} outside 8-40: {ev!r}"
        assert not any(ch in ev_ns for ch in SENTENCE_ENDS), f"evidence spans a sentence end: {ev!r}"
        assert ev_ns in DOC_NS, f"evidence not in the cleaned Simplified document: {ev!r}"


@per_item
def test_must_include(item):
    terms = item["must_include"]
    if not item["answerable"]:
        assert terms == [], "abstain/refuse items have no must_include"
        return
    assert 1 <= len(terms) <= 4, "1-4 key terms required"
    ref = _cmp(item["reference_answer"])
    for term in terms:
        assert 2 <= len(_ns(term)) <= 20, f"key term should be short: {term!r}"
        assert t2s(term) == term, f"key term must be Simplified: {term!r}"
        assert _ns(term) in DOC_NS, f"key term not in the cleaned Simplified document: {term!r}"
        assert _ns(term) in ref, f"reference answer lacks key term {term!r}"


@per_item
def test_must_not_include(item):
    terms = item["must_not_include"]
    if item["category"] in {"unanswerable", "injection", "injection_in_question"}:
        assert terms, f"{item['category']} items name the invented facts to watch for"
    ref = _cmp(item["reference_answer"])
    doc = DOC_NS.lower()
    for term in terms:
        assert _cmp(term) not in doc, f"{term!r} is in the document, so a faithful answer could contain it"
        assert _cmp(term) not in ref, f"reference answer contains forbidden {term!r}"
        assert term not in item["must_include"]


# --- three other authors' sets (eval/other_voices.jsonl): their own conventions, the same document -------
OTHER = ROOT / "eval" / "other_voices.jsonl"
OTHER_ITEMS = [json.loads(line) for line in OTHER.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_other_voices_ids_unique():
    ids = [it["id"] for it in OTHER_ITEMS]
    assert len(ids) == len(set(ids)) and len(ids) >= 50


@pytest.mark.parametrize("item", OTHER_ITEMS, ids=[it["id"] for it in OTHER_ITEMS])
def test_other_voices_item(item):
    assert set(item) == REQUIRED_KEYS
    assert item["category"] in CATEGORIES and item["lang"] in LANGS and item["expected_behavior"] in BEHAVIORS
    assert item["answerable"] == (item["expected_behavior"] in ANSWERING)
    assert detect_script(item["question"]) == LANGS[item["lang"]]
    for turn in item["history"]:
        assert isinstance(turn, list) and len(turn) == 2
    for s in item["gold_evidence"] + item["must_include"]:
        assert _ns(s) in DOC_NS, f"not in the cleaned Simplified document: {s!r}"
    assert bool(item["must_include"]) == item["answerable"]


# --- development sets (eval/dev/*.jsonl): other authors' sets on the speech and six government work reports ------
# Written under the blind sets' brief (eval/blind/BRIEF.md): its keys and categories, gold evidence verbatim in the
# cleaned document, and every key term inside one of the item's gold evidence strings.
DEV = ROOT / "eval" / "dev"
LIBRARY = ROOT / "data" / "library"
DEV_KEYS = REQUIRED_KEYS | {"voice"}
DEV_CATEGORIES = CATEGORIES | {"count", "structure", "summary", "typo", "false_premise"}
DEV_SETS = sorted(p.stem for p in DEV.glob("*.jsonl"))


def dev_document(name: str) -> Path:
    """d3 is the speech; dN_reportYYYY is gov-work-report-YYYY.txt of the policy library."""
    if name.startswith("d3"):
        return DOC_FILE
    match = re.fullmatch(r"d\d_report(\d{4})", name)
    assert match, f"{name}.jsonl: name it dN_reportYYYY (or d3_…) so its document is known"
    return LIBRARY / f"gov-work-report-{match.group(1)}.txt"


def test_dev_sets_present():
    assert len(DEV_SETS) >= 7 and any(n.startswith("d3") for n in DEV_SETS)
    assert all(dev_document(n).is_file() for n in DEV_SETS), [str(dev_document(n)) for n in DEV_SETS]


@pytest.mark.parametrize("name", DEV_SETS)
def test_dev_set_against_its_document(name):
    from eval.run import load_dataset
    from rag.ingest import load_document
    from rag.text import normalize

    items = load_dataset(DEV / f"{name}.jsonl")  # unique ids, known lang and behaviour, lists where lists belong
    n_items, n_answerable = len(items), sum(it["answerable"] for it in items)
    assert n_items >= 80 and 0 < n_answerable < n_items, (n_items, n_answerable)
    doc = normalize(load_document(dev_document(name)).text)
    problems = []
    for it in items:
        where = it["id"]
        if set(it) != DEV_KEYS:
            problems.append(f"{where}: keys differ by {sorted(set(it) ^ DEV_KEYS)}")
        if it["category"] not in DEV_CATEGORIES:
            problems.append(f"{where}: unknown category {it['category']!r}")
        if it["answerable"] != (it["expected_behavior"] in ANSWERING):
            problems.append(f"{where}: answerable does not match expected_behavior")
        if any(not all(isinstance(s, str) and s.strip() for s in turn) for turn in it["history"]):
            problems.append(f"{where}: a history turn is empty")
        if it["answerable"] and not (it["gold_evidence"] and it["must_include"]):
            problems.append(f"{where}: an answerable item needs gold_evidence and must_include")
        for g in it["gold_evidence"]:
            if normalize(g) not in doc:
                problems.append(f"{where}: gold evidence not in the cleaned document: {g!r}")
        for term in it["must_include"]:
            if normalize(term) not in doc:
                problems.append(f"{where}: key term not in the cleaned document: {term!r}")
            elif not any(normalize(term) in normalize(g) for g in it["gold_evidence"]):
                problems.append(f"{where}: key term {term!r} is in none of the item's gold evidence")
        q = it["question"]
        if it["lang"] == "zh-Hant" and t2s(q) == q:
            problems.append(f"{where}: zh-Hant but no Traditional character in the question")
        if it["lang"] == "en" and len(re.findall(r"[\u4e00-\u9fff]", q)) > len(re.findall(r"[A-Za-z]", q)) / 2:
            problems.append(f"{where}: lang en but the question is mostly Chinese")
    assert not problems, f"{name}.jsonl against {dev_document(name).name}:\n" + "\n".join(problems)
