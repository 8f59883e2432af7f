"""Prompt files in prompts/<name>.md, rendered with named `{variable}` placeholders.

Literal braces in a prompt file are written `{{` and `}}`. Values are substituted once and never parsed again,
so a question that contains `{...}` cannot reach another variable.
"""
from __future__ import annotations

import re
import string
from functools import lru_cache
from pathlib import Path

from .errors import RagError
from .settings import ROOT

PROMPTS_DIR = ROOT / "prompts"
_NAME = re.compile(r"[A-Za-z0-9_-]+")
_FORMATTER = string.Formatter()


def _path(name: str) -> Path:
    return PROMPTS_DIR / f"{name}.md"


@lru_cache(maxsize=64)
def _load(name: str) -> tuple[str, tuple[str, ...]]:
    """The prompt text and the variables it uses, read once per process."""
    if not _NAME.fullmatch(name):
        raise RagError(f"prompt name {name!r} is invalid: use letters, digits, '_' or '-' (a file in {PROMPTS_DIR})")
    path = _path(name)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        known = ", ".join(list_prompts()) or "none"
        raise RagError(f"prompt file {path} does not exist; known prompts: {known}") from None
    except OSError as exc:
        raise RagError(f"prompt file {path} is unreadable ({exc})") from None
    try:
        fields = []
        for _literal, field, spec, conversion in _FORMATTER.parse(text):
            if field is None:
                continue
            if not field.isidentifier() or spec or conversion:
                raise ValueError(f"placeholder {{{field}}} must be a plain name; write literal braces as {{{{ }}}}")
            fields.append(field)
    except ValueError as exc:
        raise RagError(f"prompt file {path} is malformed: {exc}") from None
    return text, tuple(dict.fromkeys(fields))


def prompt_variables(name: str) -> tuple[str, ...]:
    """The placeholder names a prompt uses, in order of first appearance."""
    return _load(name)[1]


def render(name: str, /, **variables: object) -> str:
    """The prompt `prompts/<name>.md` with every `{variable}` replaced; extra variables are ignored."""
    text, fields = _load(name)
    for field in fields:
        if field not in variables:
            raise RagError(
                f"prompt file {_path(name)} needs variable {field!r}; pass {field}=... to render() "
                f"(it uses: {', '.join(fields)})"
            )
    return _FORMATTER.vformat(text, (), {k: variables[k] for k in fields})


def list_prompts() -> list[str]:
    """Names of the prompt files in prompts/, sorted."""
    if not PROMPTS_DIR.is_dir():
        return []
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.md") if _NAME.fullmatch(p.stem))
