"""Cut extracted pages into page-anchored chunks that fit the embedding model.

A chunk never crosses a page, so a citation is one page and one character range on it. Inside a
page the text is split into paragraphs and sentences; consecutive sentences are packed into chunks
of at most `max_tokens`, and a chunk cut in the middle of a paragraph repeats a few whole trailing
sentences of the previous chunk, so a clause split by the cut is still found whole in one of them.

`token_len` is called once per sentence and chunk sizes are sums of sentence sizes. That is exact
for WordPiece (all-MiniLM-L6-v2 splits on whitespace before word pieces, and chunks join sentences
at whitespace) provided token_len counts no special tokens; counting [CLS]/[SEP] only over-counts.
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from docs_app.pipeline.headings import HeadingTrail, section_headings
from docs_app.pipeline.pdf_extract import ExtractedPage


@dataclass(frozen=True)
class ChunkSpan:
    """A passage to embed and cite: an exact character range of one page."""

    ordinal: int  # 0-based across the document
    page: int  # 1-based; a chunk never crosses a page boundary
    char_start: int  # offsets into that page's text
    char_end: int
    text: str  # == page_text[char_start:char_end]
    heading: str = ""  # the section heading in force where the chunk starts ("12. Governing Law")


@dataclass(frozen=True)
class _Unit:
    """A sentence, or a piece of one too long for a chunk, with its size in tokens."""

    start: int
    end: int
    tokens: int
    opens_paragraph: bool


# A line that opens a numbered item or a bullet: "1. ", "2.3 ", "(a) ", "iv) ", "Section 2", "- ".
_NUMBERED = re.compile(
    r"(?:\d+(?:\.\d+)*\.|\d+\.\d+(?:\.\d+)*|\(?[0-9A-Za-z]{1,4}\)|[\u2022\u25cf\u25aa\u25e6\u00b7*\u2013\u2014-])\s"
    r"|(?:Section|SECTION|Article|ARTICLE)\s+[0-9IVXLC]"
)
# A sentence ends at . ; ? ! (plus closing quotes or brackets) followed by space and a capital.
_SENTENCE_END = re.compile(r"""([.;?!]["'\u201d\u2019)\]]*)\s+(?=["'\u201c\u2018(\[]?[A-Z])""")
_ABBREVIATIONS = frozenset(
    {"inc", "co", "corp", "ltd", "no", "nos", "sec", "secs", "art", "arts", "para", "paras", "cl", "ch"}
    | {"vol", "fig", "ex", "approx", "dept", "est", "al", "cf", "viz", "vs", "prof", "gen"}
    | {"mr", "mrs", "ms", "dr", "jr", "sr", "st"}
    | {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}
)
_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")  # J.  U.S.  e.g.  N.A.
_ENUMERATOR = re.compile(r"\d+(?:\.\d+)*|[ivxlcdmIVXLCDM]{1,6}")  # 1.  1.2.  iv.
_TOKEN_BEFORE_DOT = re.compile(r"[^\s(\"'\u201c\u2018\[]*\Z")
_WORD = re.compile(r"\S+")
_CHAR = re.compile(r".", re.DOTALL)
# A bare page number or a lone bullet is noise, not a passage worth embedding.
_ENOUGH_WORD_CHARS = re.compile(r"(?:\w\W*){3}")


def chunk_pages(
    pages: Sequence[ExtractedPage],
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    token_len: Callable[[str], int],
) -> list[ChunkSpan]:
    """Chunk every page; the result is deterministic for the same input."""
    chunks: list[ChunkSpan] = []
    trail = HeadingTrail()
    for page in pages:
        units = _units(page.text, max_tokens=max_tokens, token_len=token_len)
        trail.read_page(section_headings(page.text))
        for start, end in _pack(units, max_tokens=max_tokens, overlap_tokens=overlap_tokens):
            text = page.text[start:end]
            heading = trail.at(start)
            if _ENOUGH_WORD_CHARS.search(text):
                chunks.append(ChunkSpan(ordinal=len(chunks), page=page.number, char_start=start, char_end=end,
                                        text=text, heading=heading))
    return chunks


def _units(text: str, *, max_tokens: int, token_len: Callable[[str], int]) -> list[_Unit]:
    units: list[_Unit] = []
    for para_start, para_end in _paragraphs(text):
        for index, (start, end) in enumerate(_sentences(text, para_start, para_end)):
            tokens = token_len(text[start:end])
            if tokens <= max_tokens:
                pieces = [(start, end, tokens)]
            else:
                pieces = _split_long(text, start, end, tokens, max_tokens=max_tokens, token_len=token_len)
            for number, (piece_start, piece_end, piece_tokens) in enumerate(pieces):
                units.append(_Unit(piece_start, piece_end, piece_tokens, index == 0 and number == 0))
    return units


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """Paragraphs as (start, end), stripped of surrounding whitespace.

    PyMuPDF separates lines, not paragraphs, so a line opens a paragraph when it follows a blank
    line, is numbered or bulleted, or is indented deeper than the line before it (not merely
    indented: filings typeset in monospace indent every line).
    """
    starts: list[int] = []
    offset = 0
    previous_indent: int | None = None  # None at the top and after a blank line
    for line in text.split("\n"):
        content = line.lstrip()
        if content:
            indent = len(line) - len(content)
            if previous_indent is None or indent > previous_indent or _NUMBERED.match(content):
                starts.append(offset + indent)
            previous_indent = indent
        else:
            previous_indent = None
        offset += len(line) + 1
    return [(start, start + len(text[start:end].rstrip())) for start, end in pairwise([*starts, len(text)])]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of the stripped paragraph text[start:end], as (start, end) without the gaps."""
    sentences = []
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.group(1)[0] == "." and _is_abbreviation(text, match.start(), start):
            continue
        sentences.append((start, match.end(1)))
        start = match.end()
    sentences.append((start, end))
    return sentences


def _is_abbreviation(text: str, dot: int, floor: int) -> bool:
    """Whether the period at `dot` ends an abbreviation, initial or item number, not a sentence."""
    before = _TOKEN_BEFORE_DOT.search(text, max(floor, dot - 16), dot)
    token = before.group() if before else ""
    if token.lower() in _ABBREVIATIONS or _INITIALS.fullmatch(token):
        return True
    if _ENUMERATOR.fullmatch(token):
        # "1." or "iv." opening a line numbers an item; "... paid in 2019." ends a sentence.
        line_start = max(floor, text.rfind("\n", floor, dot) + 1)
        return not text[line_start : dot - len(token)].strip()
    return False


def _split_long(
    text: str,
    start: int,
    end: int,
    tokens: int,
    *,
    max_tokens: int,
    token_len: Callable[[str], int],
    unit: re.Pattern[str] = _WORD,
) -> list[tuple[int, int, int]]:
    """Cut text[start:end] (`tokens` long) into (start, end, tokens) pieces of at most max_tokens.

    Cuts fall between words; only a single word too long by itself (unspaced CJK text, a base64
    blob) is cut between characters. Each piece is measured once or a few times: the first guess
    comes from the average tokens per word, and an overlong guess shrinks in proportion.
    """
    spans = [match.span() for match in unit.finditer(text, start, end)]
    pieces: list[tuple[int, int, int]] = []
    index = 0
    while index < len(spans):
        count = min(len(spans) - index, max(1, len(spans) * max_tokens // tokens))
        while True:
            piece_start, piece_end = spans[index][0], spans[index + count - 1][1]
            piece_tokens = token_len(text[piece_start:piece_end])
            if piece_tokens <= max_tokens or count == 1:
                break
            count = max(1, min(count - 1, count * max_tokens // piece_tokens))
        if piece_tokens > max_tokens and unit is _WORD:
            pieces += _split_long(
                text,
                piece_start,
                piece_end,
                piece_tokens,
                max_tokens=max_tokens,
                token_len=token_len,
                unit=_CHAR,
            )
        else:
            pieces.append((piece_start, piece_end, piece_tokens))
        index += count
    return pieces


def _pack(units: list[_Unit], *, max_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Greedily pack units into (start, end) chunk spans of at most max_tokens."""
    spans: list[tuple[int, int]] = []
    current: list[_Unit] = []
    size = 0
    for unit in units:
        full = size + unit.tokens > max_tokens
        # A paragraph is a natural cut, but cutting there leaves small chunks if taken too eagerly.
        if current and (full or (unit.opens_paragraph and size > max_tokens / 2)):
            spans.append((current[0].start, current[-1].end))
            if unit.opens_paragraph:
                current = []
            else:
                current = _overlap(
                    current, budget=min(max_tokens // 2, max_tokens - unit.tokens), wanted=overlap_tokens
                )
            size = sum(carried.tokens for carried in current)
        current.append(unit)
        size += unit.tokens
    if current:
        spans.append((current[0].start, current[-1].end))
    return spans


def _overlap(units: list[_Unit], *, budget: int, wanted: int) -> list[_Unit]:
    """The trailing whole units of a finished chunk to repeat: nearest to `wanted` tokens, within budget.

    Nearest rather than at most: legal sentences are often longer than `wanted`, and repeating one
    of them beats repeating nothing. The first unit is never repeated, so no chunk contains the
    whole previous one.
    """
    best, best_total, total = 0, 0, 0
    for count, unit in enumerate(reversed(units[1:]), start=1):
        total += unit.tokens
        if total > budget:
            break
        if abs(total - wanted) < abs(best_total - wanted):
            best, best_total = count, total
        if total >= wanted:
            break
    return units[len(units) - best :] if best else []


def embedding_text(*, context: str, text: str, token_len: Callable[[str], int], max_context_tokens: int) -> str:
    """What is embedded for a chunk: a contextual header (document title and parties, section heading) on its
    own line, then the passage with its whitespace collapsed. The header is cut to `max_context_tokens` so
    header and chunk together stay inside the model's window (the chunker leaves that much room)."""
    passage = " ".join(text.split())
    context = " ".join(context.split())
    if not context or max_context_tokens <= 0:
        return passage
    while context and token_len(context) > max_context_tokens:
        context = context.rsplit(" ", 1)[0] if " " in context else ""
    return f"{context}\n{passage}" if context else passage

