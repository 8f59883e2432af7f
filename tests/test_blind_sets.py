"""The six blind sets under eval/blind/ are frozen and sound: their bytes match the recorded hashes, they load with
the runner's validation, and every gold evidence string is in the cleaned text of its document.

The sets are sealed: this module computes aggregates only (hashes, counts, item ids) in a helper, so neither an
assertion nor a failure message ever shows a question.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

from rag.ingest import load_document
from rag.settings import ROOT
from rag.text import normalize

BLIND = ROOT / "eval" / "blind"
SPEECH = ROOT / "data" / "corpus" / "wenzhou-2023-sci-tech-plan.txt"
LIBRARY = ROOT / "data" / "library"
# sha256 of each frozen file, computed once when the sets were frozen (eval/blind/README.md lists their prefixes)
SHA256 = {
    "s1_speech_voices": "6bbb61632f361789d30465d6b2cc46b83e45fa91b3529ff0462d9e44c2c86394",
    "s2_speech_voices": "db99e6a6587fe9b304e0e1dda2ca2f844d877f9e01ceb4951696e5d9ba497793",
    "l1_report2019": "dc4190bc543517cb94a2cef60af6b40988c8c2db25cd4279eac5f6febece806c",
    "s3_speech_outline": "7c0358766cd516e2a38863b90e49cf82a7cc44829c4c99143ef893b06f9db913",
    "l2_report2022_outline": "5cf33c2859349b898d7d0880905635a8a08fab8dbda7c5a03ab2fc4227e3e135",
    "s4_speech_mixed": "1f49b63aa9591270991fe05d779c5c58dc74045af00dc65af3b6e1cd22479b4f",
}
MIN_ITEMS = 80
SETS = sorted(SHA256)


def document_of(name: str) -> Path:
    """The document a set was written about: the speech for s*, a government work report for l1 and l2."""
    if name.startswith("s"):
        return SPEECH
    return LIBRARY / {"l1": "gov-work-report-2019.txt", "l2": "gov-work-report-2022.txt"}[name[:2]]


@dataclass(frozen=True)
class Audit:
    """What the tests may see of a sealed set: aggregates and ids, never a question."""

    sha256: str
    load_error: str | None  # the exception type only: its message could quote a line
    items: int
    answerable: int
    gold: int
    gold_missing_ids: tuple[str, ...]  # items with a gold evidence string absent from the document


@lru_cache(maxsize=None)
def audit(name: str) -> Audit:
    """Hash, load (eval.run.load_dataset) and check one set against its cleaned document."""
    from eval.run import load_dataset

    path = BLIND / f"{name}.jsonl"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        items = load_dataset(path)
    except Exception as exc:  # reported by type, so that no line of the set reaches the output
        return Audit(digest, type(exc).__name__, 0, 0, 0, ())
    text = normalize(load_document(document_of(name)).text)
    missing = tuple(str(i["id"]) for i in items if any(normalize(g) not in text for g in i["gold_evidence"]))
    return Audit(digest, None, len(items), sum(bool(i["answerable"]) for i in items),
                 sum(len(i["gold_evidence"]) for i in items), missing)


def readme_table() -> dict[str, tuple[int, int]]:
    """{set: (items, answerable)} from the table in eval/blind/README.md."""
    rows = re.findall(r"^\| `(\w+)\.jsonl` \| [^|]+ \| (\d+) \| (\d+) \|", (BLIND / "README.md").read_text(
        encoding="utf-8"), flags=re.M)
    return {name: (int(items), int(answerable)) for name, items, answerable in rows}


def test_the_recorded_sets_are_the_files_present():
    present = sorted(p.stem for p in BLIND.glob("*.jsonl"))
    assert present == SETS, "a blind set was added, renamed or removed; the sets are frozen"


def test_recorded_hashes_agree_with_the_readme():
    readme = (BLIND / "README.md").read_text(encoding="utf-8")
    prefixes = dict(re.findall(r"\b([sl]\d) `([0-9a-f]{8})…`", readme))
    assert sorted(prefixes) == ["l1", "l2", "s1", "s2", "s3", "s4"], "the README's sha256 line is not as expected"
    for short, prefix in prefixes.items():
        name = next(n for n in SETS if n.startswith(short + "_"))
        assert SHA256[name].startswith(prefix), f"{name}: README prefix {prefix}, recorded {SHA256[name][:8]}"


@pytest.mark.parametrize("name", SETS)
def test_blind_set_is_unchanged(name):
    got = audit(name).sha256
    assert got == SHA256[name], f"{name}.jsonl changed (sha256 {got[:12]}…); the blind sets are frozen"


@pytest.mark.parametrize("name", SETS)
def test_blind_set_loads_and_is_large_enough(name):
    a = audit(name)
    assert a.load_error is None, f"{name}.jsonl does not load with eval.run.load_dataset ({a.load_error})"
    assert a.items >= MIN_ITEMS, f"{name}.jsonl has {a.items} items, fewer than {MIN_ITEMS}"
    assert 0 < a.answerable < a.items, f"{name}.jsonl: {a.answerable} of {a.items} items answerable"
    assert (a.items, a.answerable) == readme_table()[name], f"{name}: counts differ from eval/blind/README.md"


@pytest.mark.parametrize("name", SETS)
def test_blind_gold_evidence_is_in_its_document(name):
    a = audit(name)
    assert a.load_error is None, f"{name}.jsonl does not load ({a.load_error})"
    assert a.gold > 0, f"{name}.jsonl has no gold evidence at all"
    assert not a.gold_missing_ids, (f"{name}: {len(a.gold_missing_ids)} items have gold evidence absent from "
                                    f"{document_of(name).name} (cleaned): ids {', '.join(a.gold_missing_ids)}")
