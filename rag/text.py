"""Chinese text utilities: artifact cleaning, script detection, t2s/s2t, lexical tokens, sentence spans."""
from __future__ import annotations

import functools
import re
import unicodedata
from typing import Iterable

# --- cleaning -----------------------------------------------------------------------------------

CLEANING_VERSION = 4  # bump when clean() changes: indexes built before are stale (2-4: scraped pages)
CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff"
_TONED = "āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüńňǹḿ"
_LATIN = f"a-zA-Z{_TONED}{_TONED.upper()}\u0300-\u036f"
# "(zhǎng)", "（chuàng yè）", "(zhang3)": Latin letters right after a CJK character.
_PINYIN_GROUP = re.compile(
    rf"(?<=[{CJK}])[ \t]?[(（][ \t]*([{_LATIN}]+[1-5]?(?:[ \t'’\-]+[{_LATIN}]+[1-5]?)*)[ \t]*[)）]"
)
_INITIAL = r"(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])"
_FINAL = (
    r"(?:iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|van|üan|ai|ao|an|ei|en|er|ia|ie|in|iu|ou|ua|ui|"
    r"un|uo|ue|ve|üe|ün|vn|a|e|i|o|u|ü|v)"
)
_SYLLABLES = re.compile(rf"(?:{_INITIAL}?{_FINAL}|hm|hng|ng|m|n)+")


def _plain(s: str) -> str:
    """Strip tone marks and tone digits: 'zhǎng' -> 'zhang', 'lǜ' -> 'lü'."""
    out = []
    for ch in unicodedata.normalize("NFD", s.lower()):
        if ch == "\u0308":  # keep the umlaut of ü
            out[-1:] = ["ü"] if out and out[-1] == "u" else out[-1:]
        elif unicodedata.category(ch) != "Mn" and not ch.isdigit():
            out.append(ch)
    return "".join(out)


def _is_pinyin(group: str) -> bool:
    """A group is pinyin when every word splits into syllables and it is not an acronym like 'AI'."""
    if group.isupper() and not any(c in _TONED.upper() for c in group):
        return False
    words = [w for w in re.split(r"[ \t'’\-]+", group) if w]
    return bool(words) and all(_SYLLABLES.fullmatch(_plain(w)) for w in words)


def find_artifacts(raw: str) -> list[tuple[int, int]]:
    """Spans of conversion artifacts in raw text: pinyin groups after CJK characters and '□'."""
    spans = [m.span() for m in _PINYIN_GROUP.finditer(raw) if _is_pinyin(m.group(1))]
    spans += [(m.start(), m.end()) for m in re.finditer("□", raw)]
    return sorted(spans)


# zero-width characters and byte-order marks: scraping artefacts, never part of a document's words
_INVISIBLE = re.compile("[\u200b-\u200f\u2060\ufeff]")
# a trailing block of a scraped page that is about the page, not the document (licence and source notices)
_NOTICE = re.compile(r"维基|維基|wikisource|wikipedia|本作品|版权|版權|著作权|著作權|公有领域|公有領域|许可协议|許可協議|"
                     r"public domain|creative commons|copyright|license|licence", re.IGNORECASE)


def _lines(text: str) -> list[str]:
    return [re.sub(r"[ \t\u3000\u00a0]+", " ", line).strip() for line in text.split("\n")]


def _join(parts: list[str]) -> str:
    """Pieces of one paragraph split across lines, joined: no space, except between two Latin words."""
    out = ""
    for part in parts:
        out += (" " if out and re.match(r"[A-Za-z]", part) and re.search(r"[A-Za-z]$", out) else "") + part
    return out


_TERMINAL = re.compile(r"[。！？；：!?;:…][”’」』）)]*$")
_HEADING_START = re.compile(r"^(?:[一二三四五六七八九十]+、|（[一二三四五六七八九十]+）|第[一二三四五六七八九十]+[部章节条]|[0-9]+[.、．](?![0-9]))")
_OPEN_END = re.compile(r"[《“（(「『、，,—]$")
_CLOSE_START = re.compile(r"^[》”）)」』、，,。；;：:！？!?%]")


def paragraphs_of(text: str) -> list[str]:
    """The paragraphs of a text. Where the document separates paragraphs by blank lines (a scraped page), a line
    that stops mid-sentence continues on the next line ("政府工作报" / "告", "74.4" / "万亿元"): they are joined.
    Where it never leaves a blank line, every line is a paragraph (a byline stays apart from the text)."""
    lines = _lines(text)
    separators = "".join("x" if line else "_" for line in lines).strip("_")
    blank_style = len(re.findall("x_+(?=x)", separators)) >= 3  # paragraphs separated by blank-line runs
    out: list[list[str]] = []
    previous_blank = True
    for line in lines:
        if not line:
            previous_blank = True
            continue
        last = out[-1][-1] if out else ""
        joins = blank_style and out and not previous_blank and (
            _OPEN_END.search(last) or _CLOSE_START.match(line)
            or (not _TERMINAL.search(last) and not _HEADING_START.match(line) and not _HEADING_START.match(out[-1][0])))
        if joins:
            out[-1].append(line)
        else:
            out.append([line])
        previous_blank = False
    return [_join(p) for p in out]


def strip_notices(paragraphs: list[str], short: int = 60) -> list[str]:
    """The paragraphs without the scraped page's trailing notices: lines with no Chinese at all ("Public domain",
    "false"), and, within the run of short paragraphs that ends the page, everything from the first licence or
    source note on."""
    end = len(paragraphs)
    while end > 1 and not re.search(f"[{CJK}]", paragraphs[end - 1]):
        end -= 1
    start = end
    while start > 1 and (len(paragraphs[start - 1]) <= short or
                         (_NOTICE.search(paragraphs[start - 1]) and len(paragraphs[start - 1]) <= 5 * short)):
        start -= 1
    cut = next((i for i in range(start, end) if _NOTICE.search(paragraphs[i])), end)
    return paragraphs[:cut]


def _without_artifacts(raw: str) -> str:
    text = unicodedata.normalize("NFC", raw.replace("\r\n", "\n").replace("\r", "\n")).lstrip("\ufeff")
    parts, pos = [], 0
    for start, end in find_artifacts(text):
        parts.append(text[pos:start])
        pos = end
    parts.append(text[pos:])
    return "\n".join(_INVISIBLE.sub("", line) for line in "".join(parts).split("\n")
                      if not line.strip() or _INVISIBLE.sub("", line).strip())  # a line of only invisibles goes


# the title block a scraped page opens with: a title line, a date line ("——2017年3月5日在…会议上"), a speaker line
_DATE_LINE = re.compile(r"^[—\-－]{1,2}|(19|20)[0-9]{2}年[0-9]{1,2}月[0-9]{1,2}日")
_SPEAKER_LINE = re.compile(r"(总理|主任|局长|书记|市长|省长|县长|区长|部长|厅长|院长|主席|委员长)\s*[\u4e00-\u9fff]{2,3}$")
_KIND_WORD = re.compile(r"报告|報告|讲话|講話|方案|规划|規劃|纲要|綱要|意见|意見|通知|办法|辦法|决定|決定|条例|條例|公报|公報")


def _header_line(p: str) -> bool:
    short = len(p) <= 60 and not re.search(r"[。！？；;!?]", p)
    return short and bool(_DATE_LINE.search(p) or _SPEAKER_LINE.search(p) or (len(p) <= 20 and _KIND_WORD.search(p)))


def split_header(paragraphs: list[str]) -> tuple[list[str], list[str]]:
    """(the title block, the rest): a page's opening run of title, date and speaker lines, when it has two or more
    of them (a scraped title page). A lone byline is the document's own signature and stays in the text."""
    n = 0
    while n < len(paragraphs) and _header_line(paragraphs[n]):
        n += 1
    return (paragraphs[:n], paragraphs[n:]) if n >= 2 else ([], paragraphs)


def clean_document(raw: str) -> tuple[str, list[str]]:
    """(the cleaned text, the title block taken off it): conversion artefacts (pinyin after characters, □),
    invisible characters, paragraph splits, the title block and trailing notices of scraped pages, and duplicate
    whitespace removed; every character of the body is kept."""
    header, body = split_header(strip_notices(paragraphs_of(_without_artifacts(raw))))
    return "\n".join(body), header


def clean(raw: str) -> str:
    """The cleaned text of a raw document (see clean_document)."""
    return clean_document(raw)[0]


def cleaning_report(raw: str) -> dict[str, int]:
    """What clean() removed from a raw text, line by line: blank lines, lines joined to the one before (a
    paragraph split mid-sentence), lines of a trailing notice, artefacts and invisible characters."""
    text = _without_artifacts(raw)
    paragraphs = paragraphs_of(text)
    kept = strip_notices(paragraphs)
    header, kept = split_header(kept)
    lines = _lines(text)
    notice_chars = sum(len(p) for p in paragraphs[len(kept):])
    nonblank = [line for line in lines if line]
    notice_lines, total = 0, 0
    for line in reversed(nonblank):  # the notices are the last lines
        if total >= notice_chars:
            break
        total += len(line)
        notice_lines += 1
    return {"raw_lines": len(raw.split("\n")), "blank_lines": sum(1 for line in raw.split("\n") if not line.strip()),
            "joined_lines": len(nonblank) - notice_lines - len(kept) - len(header), "notice_lines": notice_lines,
            "header_lines": len(header),
            "paragraphs": len(kept), "artifacts": len(find_artifacts(raw)), "invisible": len(_INVISIBLE.findall(raw))}


# --- scripts ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _converter(config: str):
    import opencc  # the official package; loads its dictionaries once

    return opencc.OpenCC(config)


@functools.lru_cache(maxsize=4096)
def t2s(text: str) -> str:
    """Traditional → Simplified (OpenCC t2s); length-preserving for this corpus' characters."""
    return _converter("t2s").convert(text)


@functools.lru_cache(maxsize=4096)
def s2t(text: str) -> str:
    """Simplified → Traditional (OpenCC s2t)."""
    return _converter("s2t").convert(text)


def to_script(text: str, script: str) -> str:
    """Render text in 'hans' (Simplified) or 'hant' (Traditional); anything else leaves it unchanged."""
    if script == "hans":
        return t2s(text)
    if script == "hant":
        return s2t(text)
    return text


# Cantonese question and function words → Mandarin (language knowledge; applied to Traditional questions only).
_CANTONESE = (("係唔係", "是不是"), ("係咪", "是不是"), ("點樣", "怎樣"), ("點解", "為什麼"), ("乜嘢", "什麼"), ("咩嘢", "什麼"),
              ("邊個", "誰"), ("邊度", "哪裡"), ("邊間", "哪家"), ("幾多", "多少"), ("幾時", "什麼時候"), ("而家", "現在"),
              ("冇", "沒有"), ("嘅", "的"), ("咗", "了"), ("喺", "在"), ("佢哋", "他們"), ("佢", "它"), ("啲", "些"), ("唔", "不"),
              ("咩", "什麼"), ("嗰", "那"), ("呢個", "這個"))


def to_simplified_question(text: str) -> str:
    """A question in Simplified Chinese for matching: Cantonese particles and Taiwan / Hong Kong wording mapped to
    their Mandarin equivalents (OpenCC tw2sp: 軟體 → 软件, 資訊 → 信息). Not for documents: offsets must hold there."""
    if detect_script(text) != "hant":
        return text
    for a, b in _CANTONESE:
        text = text.replace(a, b)
    return _converter("tw2sp").convert(text)


def cjk_count(text: str) -> int:
    """How many CJK ideographs the text has."""
    return len(re.findall(f"[{CJK}]", text))


@functools.lru_cache(maxsize=4096)
def detect_script(text: str) -> str:
    """'hans', 'hant' or 'en' (Latin or no Chinese): the script a question is written in, judged on its first
    sentence with letters (a Chinese question followed by an English aside is Chinese)."""
    for sentence in re.split(r"(?<=[。？！?!\n])|(?<=\.)\s", text):
        if re.search(f"[{CJK}A-Za-z]", sentence):
            text = sentence
            break
    n_cjk = cjk_count(text)
    n_latin = len(re.findall(r"[A-Za-z]", text))
    if n_cjk == 0 or n_latin >= 2 * n_cjk:
        return "en"
    as_s, as_t = t2s(text), s2t(text)
    trad = sum(a != b for a, b in zip(text, as_s))  # characters that change when simplified
    simp = sum(a != b for a, b in zip(text, as_t))  # characters that change when traditionalised
    return "hant" if trad > simp else "hans"


# --- lexical tokens -----------------------------------------------------------------------------

_WORDISH = re.compile(f"[{CJK}]+|[A-Za-z]+|[0-9]+(?:\\.[0-9]+)?")
_IS_CJK = re.compile(f"[{CJK}]")


def normalize(text: str) -> str:
    """The matching form: t2s, NFKC, lower case, no whitespace (used for every lexical comparison)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", t2s(text)).lower())


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


@functools.lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def tokenize(text: str, mode: str = "bigram") -> list[str]:
    """Tokens for lexical search on t2s-normalised text: CJK bigrams / unigrams / jieba words, Latin words."""
    norm = normalize(text)
    tokens: list[str] = []
    for m in _WORDISH.finditer(norm):
        run = m.group(0)
        if not _IS_CJK.match(run):
            tokens.append(run)  # Latin word or number
            continue
        if mode in ("bigram", "unigram+bigram", "jieba+bigram"):
            tokens.extend(_bigrams(run))
        if mode == "unigram+bigram" and len(run) > 1:
            tokens.extend(run)
        if mode in ("jieba", "jieba+bigram"):
            tokens.extend(w for w in _jieba().lcut(run) if w.strip())
    return tokens


# --- sentences ----------------------------------------------------------------------------------

_ENDS = "。！？；;!?"
_COMMAS = "，,"
_OPEN = "“‘「『《〈（(\""
_CLOSE = {"“": "”", "‘": "’", "「": "」", "『": "』", "《": "》", "〈": "〉", "（": "）", "(": ")", '"': '"'}


def _cut_points(text: str, marks: str) -> list[int]:
    """Positions just after a mark in `marks` that is not inside a quotation or bracket."""
    cuts, stack = [], []
    for i, ch in enumerate(text):
        if stack and ch == _CLOSE[stack[-1]]:
            stack.pop()
        elif ch in _OPEN and not (ch == '"' and stack and stack[-1] == '"'):
            stack.append(ch)
        elif not stack and ch in marks:
            # keep closing quotes/brackets that follow the mark with this sentence
            j = i + 1
            while j < len(text) and text[j] in "”’」』》〉）)":
                j += 1
            cuts.append(j)
    return cuts


def _spans_between(text: str, offset: int, cuts: Iterable[int]) -> list[tuple[int, int]]:
    spans, prev = [], 0
    for cut in list(cuts) + [len(text)]:
        if cut <= prev:
            continue
        piece = text[prev:cut]
        lead = len(piece) - len(piece.lstrip())
        trail = len(piece) - len(piece.rstrip())
        if piece.strip():
            spans.append((offset + prev + lead, offset + cut - trail))
        prev = cut
    return spans


def sentence_spans(text: str, max_clause_chars: int = 60, min_clause_chars: int = 12) -> list[tuple[int, int]]:
    """Sentence spans (start, end) of `text`; over-long sentences are cut at commas, never inside quotes."""
    out: list[tuple[int, int]] = []
    for s, e in _spans_between(text, 0, _cut_points(text, _ENDS + "\n")):
        if e - s <= max_clause_chars:
            out.append((s, e))
            continue
        sentence = text[s:e]
        clauses = _spans_between(sentence, s, _cut_points(sentence, _COMMAS))
        # merge clauses into pieces of at most max_clause_chars, none shorter than min_clause_chars
        pieces: list[list[int]] = []
        for cs, ce in clauses:
            if pieces and (ce - pieces[-1][0] <= max_clause_chars or pieces[-1][1] - pieces[-1][0] < min_clause_chars):
                pieces[-1][1] = ce
            else:
                pieces.append([cs, ce])
        if len(pieces) > 1 and pieces[-1][1] - pieces[-1][0] < min_clause_chars:
            last = pieces.pop()
            pieces[-1][1] = last[1]
        out.extend((a, b) for a, b in pieces)
    return out


def split_sentences(text: str, max_clause_chars: int = 60) -> list[str]:
    """The sentences (or comma clauses of long ones) of `text`."""
    return [text[s:e] for s, e in sentence_spans(text, max_clause_chars)]
