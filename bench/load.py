"""`python -m bench.load --url URL --clients N --seconds S [--json PATH] [--pid PID]`: load the app's HTTP API.

N asyncio clients (httpx, at most N connections, proxies from the environment ignored) post the dataset's
questions with their history to POST {URL}/api/ask, round robin, for S seconds; requests still in flight at
the deadline are awaited and counted. Only http://127.0.0.1 is accepted: this is a tool for your own server.

requests      every completed request (2xx, 429, other statuses, transport failures)
errors        non-2xx responses other than 429, plus transport failures (refused connection, timeout)
rate_limited  429 responses (the server's per-client limit: start it with rate_limit=0 to measure throughput)
rps           requests / wall time from the first request to the last response
p50/p95/p99   latency of the 2xx responses, in ms (null when there is none)
--unique      appends " #<n>" to every question so that no two requests are alike: the server's per-question
              caches (query vectors) then never hit, as with real users; without it the dataset's 130 questions
              repeat and, after the first round, mostly measure cached answers
rss_mb_*      the server's resident memory (the --pid process and its children) before and after, via psutil;
              null without --pid (the server is then only checked through GET {URL}/api/health)
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

import numpy as np

from . import DATASET, BenchError, load_items, rounded, write_json

ALLOWED_HOST = "127.0.0.1"
KEYS = ("requests", "errors", "rate_limited", "rps", "p50_ms", "p95_ms", "p99_ms", "rss_mb_before", "rss_mb_after")


def check_url(url: str) -> str:
    """The base URL without a trailing slash; BenchError unless it is http://127.0.0.1[:port]."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname != ALLOWED_HOST:
        raise BenchError(f"refusing to load-test {url!r}: only http://{ALLOWED_HOST}:PORT is allowed "
                         "(start the app locally and pass its address)")
    if parts.path.rstrip("/") or parts.query or parts.fragment:
        raise BenchError(f"pass the server's base URL (http://{ALLOWED_HOST}:PORT), not {url!r}")
    return f"http://{parts.netloc}"


def server_rss_mb(pid: int | None) -> float | None:
    """RSS of a process and its children in MiB; None without a pid."""
    if pid is None:
        return None
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(p.memory_info().rss for p in procs) / (1024 * 1024)
    except psutil.Error as exc:
        raise BenchError(f"cannot read the memory of pid {pid} ({exc}); pass the server's pid or drop --pid") from None


async def _health(client, base: str) -> dict:
    import httpx

    try:
        response = await client.get(f"{base}/api/health")
    except httpx.HTTPError as exc:
        raise BenchError(f"no server at {base} ({type(exc).__name__}: {exc}); start the app first") from None
    if response.status_code != 200:
        raise BenchError(f"GET {base}/api/health answered {response.status_code}; is this the app?")
    try:
        return response.json()
    except ValueError:
        return {}


async def run_load(url: str, clients: int, seconds: float, items: Sequence[dict], *, pid: int | None = None,
                   timeout_s: float = 60.0, unique: bool = False) -> dict[str, Any]:
    """Drive POST /api/ask with `clients` concurrent clients for `seconds`; the figures of the module docstring."""
    import httpx

    base = check_url(url)
    if clients < 1 or seconds <= 0:
        raise BenchError(f"--clients {clients} / --seconds {seconds}: use at least 1 client and a positive duration")
    if not items:
        raise BenchError("no questions to send")
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    next_item = [0]
    async with httpx.AsyncClient(limits=limits, timeout=timeout_s, trust_env=False) as client:
        health = await _health(client, base)
        rss_before = server_rss_mb(pid)

        async def one_client() -> None:
            while time.perf_counter() < deadline:
                n = next_item[0]
                next_item[0] += 1
                item = items[n % len(items)]
                question = f"{item['question']} #{n}" if unique else item["question"]
                body = {"question": question, "history": item.get("history") or []}
                t0 = time.perf_counter()
                try:
                    response = await client.post(f"{base}/api/ask", json=body)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                if 200 <= response.status_code < 300:
                    latencies.append((time.perf_counter() - t0) * 1e3)
                statuses[str(response.status_code)] += 1

        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        await _health(client, base)  # the server survived
        rss_after = server_rss_mb(pid)

    requests = sum(statuses.values())
    ok = sum(n for s, n in statuses.items() if s.isdigit() and 200 <= int(s) < 300)
    rate_limited = statuses.get("429", 0)
    lat = np.asarray(latencies, dtype=np.float64)
    pct = {f"p{q}_ms": (float(np.percentile(lat, q)) if lat.size else None) for q in (50, 95, 99)}
    return {
        "requests": requests, "errors": requests - ok - rate_limited, "rate_limited": rate_limited,
        "rps": requests / elapsed if elapsed > 0 else None, **pct,
        "rss_mb_before": rss_before, "rss_mb_after": rss_after,
        "ok": ok, "ok_rps": ok / elapsed if elapsed > 0 else None, "statuses": dict(sorted(statuses.items())),
        "seconds": elapsed, "clients": clients, "url": base, "pid": pid, "unique": unique,
        "server": {k: health.get(k) for k in ("engine", "embedder", "chunks", "settings_hash") if k in health},
    }


def summary(result: dict) -> str:
    """One screen of text."""
    def ms(v):
        return "n/a" if v is None else f"{v:.1f}"

    def mb(v):
        return "n/a" if v is None else f"{v:.0f} MB"

    return "\n".join([
        f"{result['url']}/api/ask  {result['clients']} clients, {result['seconds']:.1f} s"
        f"{', distinct questions' if result['unique'] else ''}",
        f"requests {result['requests']}  ok {result['ok']}  errors {result['errors']}  "
        f"rate_limited {result['rate_limited']}  statuses {result['statuses']}",
        f"throughput {result['rps']:.1f} req/s ({result['ok_rps']:.1f} ok/s)",
        f"latency p50 {ms(result['p50_ms'])} ms  p95 {ms(result['p95_ms'])} ms  p99 {ms(result['p99_ms'])} ms",
        f"server RSS before {mb(result['rss_mb_before'])}, after {mb(result['rss_mb_after'])}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the running app, e.g. http://127.0.0.1:7860")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--pid", type=int, help="the server's process id, for its RSS")
    parser.add_argument("--dataset", type=Path, default=DATASET)
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout in seconds")
    parser.add_argument("--unique", action="store_true", help="make every question distinct (defeats server caches)")
    args = parser.parse_args(argv)
    try:
        check_url(args.url)
        result = asyncio.run(run_load(args.url, args.clients, args.seconds, load_items(args.dataset),
                                      pid=args.pid, timeout_s=args.timeout, unique=args.unique))
    except BenchError as exc:
        print(f"bench.load: {exc}", file=sys.stderr)
        return 2
    result = rounded(result, 3)
    print(summary(result))
    if args.json:
        print(f"JSON written to {write_json(args.json, result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
