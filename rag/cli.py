"""`python -m rag build|ask|batch|chat`: domain errors become one-line messages and a non-zero exit."""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

from .errors import RagError
from .serialize import answer_to_dict
from .settings import build_settings, corpus_overrides, parse_overrides


def _settings(args: argparse.Namespace):
    overrides = parse_overrides(getattr(args, "set", None))
    overrides.update(corpus_overrides(getattr(args, "corpus", None), getattr(args, "index", None)))
    if getattr(args, "k", None):
        overrides["top_k"] = args.k
        overrides.setdefault("candidate_k", max(args.k, 30))
    return build_settings(overrides=overrides)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pipeline(args, rebuild: str = "auto"):
    from .pipeline import Pipeline

    settings = _settings(args)
    return Pipeline.from_settings(settings, rebuild=rebuild, progress=_progress)


def cmd_build(args) -> int:
    from .embeddings import resolve_embedder
    from .store import build_index

    from .errors import IndexCorruptError, IndexMissingError, IndexStaleError
    from .store import load_index

    settings = _settings(args)
    embedder = resolve_embedder(settings)
    if args.if_stale:
        try:
            load_index(settings, embedder.name)
            _progress(f"index at {settings.index_dir} is up to date")
            return 0
        except (IndexMissingError, IndexStaleError, IndexCorruptError) as exc:
            _progress(f"{exc} — rebuilding")
    build_index(settings, embedder, _progress)
    return 0


def cmd_ask(args) -> int:
    pipe = _pipeline(args)
    answer = pipe.ask(args.question)
    if args.json:
        print(json.dumps(answer_to_dict(answer), ensure_ascii=False, indent=2))
        return 0
    print(render_text(answer))
    return 0


def render_text(answer) -> str:
    """A terminal rendering: the answer (when there is one), its sources, the top hits and the engine."""
    lines = []
    if answer.text:
        lines += [answer.text, ""]
        for c in answer.citations:
            lines.append(f"[{c.n}] {c.chunk.doc_id} ¶{c.chunk.paragraph}: {c.quote}")
        lines.append("")
    if not answer.citations:
        lines.append("检索结果 (top hits):")
        for h in answer.hits:
            lines.append(f"{h.rank}. [{h.score:.3f}] {h.chunk.doc_id} ¶{h.chunk.paragraph}: {h.chunk.text}")
    lines.append(f"-- engine: {answer.engine} · embedder: {answer.embedder} · {answer.timings_ms['total']:.0f} ms")
    return "\n".join(lines)


def cmd_batch(args) -> int:
    from tqdm import tqdm

    pipe = _pipeline(args)
    src = Path(args.input)
    try:
        lines = src.read_text(encoding="utf-8").split("\n")  # not splitlines(): U+2028 may sit inside a JSON string
    except (OSError, UnicodeDecodeError) as exc:
        raise RagError(f"cannot read {src} ({exc})") from None
    bad = 0
    with open(args.output, "w", encoding="utf-8") as out:
        for lineno, line in enumerate(tqdm(lines, desc="batch", unit="q", file=sys.stderr), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if not isinstance(item, dict):
                    raise RagError("line is not a JSON object")
                answer = pipe.ask(item.get("question"), item.get("history") or [])
                row = answer_to_dict(answer, item.get("id"))
            except (RagError, json.JSONDecodeError) as exc:
                bad += 1
                _progress(f"{src}:{lineno}: skipped: {exc}")
                row = {"id": item.get("id") if isinstance(locals().get("item"), dict) else None,
                       "question": item.get("question") if isinstance(locals().get("item"), dict) else None,
                       "error": str(exc)}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            item = None
    _progress(f"wrote {args.output} ({len([l for l in lines if l.strip()])} lines, {bad} with errors)")
    return 0


def cmd_chat(args) -> int:
    """An interactive question loop on the terminal."""
    pipe = _pipeline(args)
    print("温州科技创新规划问答 — 输入问题，回车提问；空行或 Ctrl-D 退出。")
    history: list[tuple[str, str]] = []
    while True:
        try:
            q = input("\n问> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not q:
            return 0
        try:
            answer = pipe.ask(q, history)
        except RagError as exc:
            print(f"错误: {exc}")
            continue
        print(render_text(answer))
        history.append((q, answer.text or ""))


def cmd_add(args) -> int:
    """Copy documents into the corpus folder and bring the index up to date: only the new texts are embedded."""
    settings = _settings(args)
    folder = Path(settings.corpus_dir)
    if not folder.is_dir():
        raise RagError(f"the corpus {folder} is not a folder; `rag add` adds files to a corpus folder (--corpus DIR)")
    for name in args.files:
        src = Path(name)
        if not src.is_file() or src.suffix.lower() not in (".txt", ".md"):
            raise RagError(f"{src} is not a .txt or .md file")
        if (folder / src.name).exists() and (folder / src.name).read_bytes() != src.read_bytes():
            _progress(f"replacing {src.name}")
        for companion in (src.with_suffix(".meta.json"), src.with_suffix(".domain.json")):
            if companion.is_file():
                shutil.copy2(companion, folder / companion.name)
        shutil.copy2(src, folder / src.name)
    return cmd_build(argparse.Namespace(**{**vars(args), "if_stale": True}))


def cmd_remove(args) -> int:
    """Remove documents (by id: the file stem) from the corpus folder and bring the index up to date."""
    settings = _settings(args)
    folder = Path(settings.corpus_dir)
    for doc_id in args.doc_ids:
        found = [p for p in folder.glob(f"{doc_id}.*") if p.suffix.lower() in (".txt", ".md", ".json")]
        if not any(p.suffix.lower() in (".txt", ".md") for p in found):
            raise RagError(f"no document {doc_id!r} in {folder}; ids are file names without .txt/.md")
        for p in found:
            p.unlink()
    return cmd_build(argparse.Namespace(**{**vars(args), "if_stale": True}))


def cmd_feedback_export(args) -> int:
    from .feedback import export_main

    return export_main([args.out] + (["--db", args.db] if args.db else []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rag", description="Policy document Q&A — command line")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="cmd", required=True)

    def common(p):
        p.add_argument("--corpus", help="corpus folder or one document (default: data/corpus, the speech)")
        p.add_argument("--index", help="index folder (default: index/default)")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a setting (repeatable)")

    p = sub.add_parser("build", help="build the index")
    common(p)
    p.add_argument("--if-stale", action="store_true", help="only when missing, stale or corrupt")
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("ask", help="ask one question")
    common(p)
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print the answer JSON")
    p.add_argument("--k", type=int, help="number of hits")
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser("batch", help="answer a JSONL file of {id, question, history}")
    common(p)
    p.add_argument("input")
    p.add_argument("output")
    p.set_defaults(func=cmd_batch)
    p = sub.add_parser("chat", help="interactive question loop")
    common(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("add", help="add (or replace) documents in the corpus folder; embeds only what is new")
    common(p)
    p.add_argument("files", nargs="+", help=".txt/.md files (a .meta.json / .domain.json beside each is copied too)")
    p.set_defaults(func=cmd_add)
    p = sub.add_parser("remove", help="remove documents from the corpus folder by id and update the index")
    common(p)
    p.add_argument("doc_ids", nargs="+", help="document ids (file names without .txt/.md)")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("feedback-export", help="export the 👍/👎 feedback database as CSV")
    p.add_argument("out", help="the CSV file to write")
    p.add_argument("--db", help="the feedback database (default: the feedback_db setting)")
    p.set_defaults(func=cmd_feedback_export)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except RagError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
