"""`python -m bench`: the JSON it writes has every figure, and our retrieval is no worse than the naive one."""
from __future__ import annotations

import json
import subprocess
import sys

from rag.settings import ROOT

FIGURES = {"build_s", "retrieval_ms", "answer_ms", "cold_start_s", "peak_rss_mb", "quality"}


def test_bench_quick_run(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--repeat", "1", "--quick", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "retrieval p95" in proc.stdout and ("PASS" in proc.stdout or "MISS" in proc.stdout)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert FIGURES | {"naive", "ratios", "machine", "config"} <= set(data)
    assert FIGURES <= set(data["naive"])
    for block in (data, data["naive"]):
        assert set(block["retrieval_ms"]) == {"p50", "p95"}
        assert set(block["quality"]) == {"hit@1", "mrr@10"}
        assert block["build_s"] > 0 and block["cold_start_s"] > 0 and block["peak_rss_mb"] > 0
    assert set(data["answer_ms"]) == {"p50", "p95"}
    assert data["naive"]["answer_ms"] is None and data["ratios"]["answer_ms"] is None
    assert {"cpu_count", "python", "platform"} <= set(data["machine"])
    assert data["quality"]["hit@1"] >= data["naive"]["quality"]["hit@1"]
    assert data["quality"]["mrr@10"] >= data["naive"]["quality"]["mrr@10"]
    assert isinstance(data["diagnostics"]["cold_start"]["ours"]["torch_imported"], bool)
