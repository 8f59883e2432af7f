"""`python -m eval.cmrc [--src FILE] [--out DIR]`: CMRC 2018 (trial) → a corpus folder and an evaluation dataset.

CMRC 2018 (Cui et al., "A Span-Extraction Dataset for Chinese Machine Reading Comprehension", EMNLP 2019;
github.com/ymcui/cmrc2018), licensed CC BY-SA 4.0, is outside data: Wikipedia passages and questions nobody on the
team wrote. Each passage becomes one document (its title as the first line, then the passage); each question one
dataset item whose `answers_any` are the human-marked spans (an answer is good when it contains one of them),
`gold_evidence` the same spans (a retrieved passage holding one is a hit) and `doc_id` its passage.

Writes DIR/corpus/<context_id>.txt, DIR/dataset.jsonl (and its two folds by passage, dataset.fold0.jsonl for
fitting, dataset.fold1.jsonl for judging) and DIR/ATTRIBUTION.md. Nothing of it is read by the engine.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from rag.settings import ROOT

DEFAULT_SRC = ROOT.parent / "shared" / "cmrc2018" / "cmrc2018_trial.json"
DEFAULT_OUT = ROOT / "eval" / "runs" / "cmrc2018"
ATTRIBUTION = """CMRC 2018 trial set: Cui et al., "A Span-Extraction Dataset for Chinese Machine Reading Comprehension",
EMNLP 2019 (https://github.com/ymcui/cmrc2018). Licence: CC BY-SA 4.0. Converted by eval/cmrc.py: one document per
passage (title as its first line), one dataset item per question.
"""


def fold(key: str) -> int:
    """A stable 0/1 split by passage (never by question: questions of one passage stay together)."""
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % 2


def convert(src: Path, out: Path) -> tuple[Path, Path]:
    """Write the corpus folder and the dataset; returns (corpus_dir, dataset_path)."""
    passages = json.loads(Path(src).read_text(encoding="utf-8"))
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for old in corpus.glob("*.txt"):
        old.unlink()
    items = []
    for p in passages:
        doc_id = p["context_id"]
        (corpus / f"{doc_id}.txt").write_text(f"{p['title'].strip()}\n{p['context_text'].strip()}\n", encoding="utf-8")
        for qa in p["qas"]:
            answers = list(dict.fromkeys(a.strip() for a in qa["answers"] if a.strip()))
            if not answers or not qa["query_text"].strip():  # the trial set has one question with no text
                continue
            items.append({"id": qa["query_id"], "question": qa["query_text"], "history": [], "category": "cmrc",
                          "voice": "cmrc", "lang": "zh-Hans", "answerable": True, "expected_behavior": "answer",
                          "gold_evidence": answers, "must_include": [], "must_not_include": [],
                          "answers_any": answers, "doc_id": doc_id, "fold": fold(doc_id)})
    dataset = out / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    for k in (0, 1):  # fold 0 trains the fitted models (eval.fit); fold 1 is only ever judged
        (out / f"dataset.fold{k}.jsonl").write_text(
            "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items if i["fold"] == k), encoding="utf-8")
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION, encoding="utf-8")
    return corpus, dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.cmrc", description=__doc__.split("\n")[0])
    parser.add_argument("--src", default=str(DEFAULT_SRC), help="cmrc2018_trial.json")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (corpus/ and dataset.jsonl)")
    args = parser.parse_args(argv)
    if not Path(args.src).is_file():
        print(f"error: {args.src} does not exist; pass --src PATH/cmrc2018_trial.json", file=sys.stderr)
        return 2
    corpus, dataset = convert(Path(args.src), Path(args.out))
    n = sum(1 for _ in dataset.open(encoding="utf-8"))
    print(f"wrote {len(list(corpus.glob('*.txt')))} documents to {corpus} and {n} items to {dataset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
