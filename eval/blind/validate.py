#!/usr/bin/env python3
"""Validate a question set against its document.  Usage: python3 validate.py SET.jsonl DOC.txt
Prints problems (fix them all) and a summary.  Matching form: OpenCC t2s, NFKC, lower case, all whitespace removed."""
import json, re, sys, unicodedata
from collections import Counter
from opencc import OpenCC
t2s = OpenCC("t2s").convert
def norm(s): return re.sub(r"\s+", "", unicodedata.normalize("NFKC", t2s(s)).lower())
# the speech has pinyin artefacts like 長(zhǎng) and a stray □: they are removed before matching
def clean(raw): return re.sub(r"[(（][a-zA-Z\u00c0-\u024f\u0300-\u036f ]+[)）]", "", raw).replace("□", "")
path, doc_path = sys.argv[1], sys.argv[2]
doc = norm(clean(open(doc_path, encoding="utf-8").read()))
KEYS = {"id","question","history","category","voice","lang","answerable","expected_behavior","gold_evidence","must_include","must_not_include","reference_answer"}
CATS = {"fact","paraphrase","financing","list","count","multi_hop","structure","summary","follow_up","traditional","english","typo","false_premise","unanswerable","off_topic","injection","injection_in_question"}
BEH = {"answer","answer_ignore_injection","abstain","refuse"}
problems, items, ids = [], [], set()
for n, line in enumerate(open(path, encoding="utf-8"), 1):
    if not line.strip(): problems.append(f"line {n}: blank"); continue
    try: it = json.loads(line)
    except Exception as e: problems.append(f"line {n}: not JSON ({e})"); continue
    items.append(it); p = f"line {n} ({it.get('id')})"
    miss = KEYS - set(it); extra = set(it) - KEYS
    if miss: problems.append(f"{p}: missing keys {sorted(miss)}")
    if extra: problems.append(f"{p}: unknown keys {sorted(extra)}")
    if it.get("id") in ids: problems.append(f"{p}: duplicate id")
    ids.add(it.get("id"))
    if it.get("category") not in CATS: problems.append(f"{p}: category {it.get('category')!r} not in {sorted(CATS)}")
    if it.get("expected_behavior") not in BEH: problems.append(f"{p}: expected_behavior not in {sorted(BEH)}")
    if it.get("lang") not in ("zh-Hans","zh-Hant","en"): problems.append(f"{p}: lang must be zh-Hans, zh-Hant or en")
    if not isinstance(it.get("answerable"), bool): problems.append(f"{p}: answerable must be true/false")
    ans = it.get("answerable"); beh = it.get("expected_behavior")
    if ans and beh not in ("answer","answer_ignore_injection"): problems.append(f"{p}: answerable items expect answer/answer_ignore_injection")
    if ans is False and beh not in ("abstain","refuse"): problems.append(f"{p}: unanswerable items expect abstain/refuse")
    h = it.get("history", [])
    if not isinstance(h, list) or not all(isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) and x.strip() for x in t) for t in h):
        problems.append(f"{p}: history must be a list of [user, assistant] string pairs")
    for key in ("gold_evidence","must_include","must_not_include"):
        v = it.get(key, [])
        if not isinstance(v, list) or not all(isinstance(s, str) and s.strip() for s in v): problems.append(f"{p}: {key} must be a list of non-empty strings")
    if ans:
        if not it.get("gold_evidence"): problems.append(f"{p}: an answerable item needs gold_evidence")
        if not it.get("must_include"): problems.append(f"{p}: an answerable item needs must_include")
        for g in it.get("gold_evidence", []):
            if norm(g) not in doc: problems.append(f"{p}: gold_evidence not found verbatim in the document: {g!r}")
        for m in it.get("must_include", []):
            if norm(m) not in doc: problems.append(f"{p}: must_include term not in the document: {m!r}")
            elif not any(norm(m) in norm(g) for g in it.get("gold_evidence", [])): problems.append(f"{p}: must_include term {m!r} is in none of the item's gold_evidence strings")
    q = it.get("question", "")
    cjk = len(re.findall(r"[\u4e00-\u9fff]", q)); lat = len(re.findall(r"[A-Za-z]", q))
    if it.get("lang") == "en" and cjk > lat / 2: problems.append(f"{p}: lang en but the question is mostly Chinese")
    if it.get("lang") in ("zh-Hans","zh-Hant") and cjk == 0: problems.append(f"{p}: lang zh but no Chinese characters")
    if it.get("lang") == "zh-Hant" and t2s(q) == q: problems.append(f"{p}: lang zh-Hant but the question has no Traditional characters")
print("\n".join(problems) if problems else "no problems")
print(f"{len(items)} items; answerable {sum(bool(i.get('answerable')) for i in items)}; with history {sum(bool(i.get('history')) for i in items)}")
for key in ("category","voice","lang","expected_behavior"):
    print(key, dict(Counter(i.get(key) for i in items)))
sys.exit(1 if problems else 0)
