"""Section headings of page text, so a passage can be embedded with the heading it sits under.

A passage from the middle of a clause rarely repeats the clause's subject ("This Agreement shall be construed
in accordance with the laws of ..."), but its heading does ("14. Governing Law"). Embedding a chunk together
with its document's title and its section heading (a contextual chunk header) lets the question's words meet
them.

Headings recognised, one line each (an enumerator alone on its line joins the line after it):
- numbered: "12. Governing Law", "Section 3.2 Term", "ARTICLE IV - TERMINATION", "2. CREATION OF THE JOINT VENTURE."
- numbered and run in: "7. Confidentiality. Each party shall ..." (the heading is the capitalised lead-in);
- unnumbered lines in capitals ("GOVERNING LAW") and the usual section names of papers ("Methods").
Lines that read like sentences, definitions or signature blocks are not headings. Django-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADING_CHARS = 90
_ENUMERATOR = r"(?:(?:section|article|clause|part)\s+)?(?:\d+(?:\.\d+)*\.?|[IVXLC]{1,6}\.|\(?[a-z]\)|[A-Z]\.)"
_NUMBERED = re.compile(rf"^(?P<number>{_ENUMERATOR})\s*[-\u2013\u2014:]?\s*(?P<rest>.*)$", re.IGNORECASE)
_LONE_ENUMERATOR = re.compile(rf"^{_ENUMERATOR}$", re.IGNORECASE)
_CONNECTORS_TEXT = (
    "of and or to the for in on a an by with from under &"
)
_CONNECTORS = frozenset(_CONNECTORS_TEXT.split())
_PAPER_SECTIONS_TEXT = (
    "abstract background introduction methods methodology results discussion conclusion conclusions objective "
    "objectives purpose aims design setting participants patients interventions measurements limitations references "
    "acknowledgements acknowledgments funding summary"
)
_PAPER_SECTIONS = frozenset(_PAPER_SECTIONS_TEXT.split())
_RUN_IN = re.compile(r"^(?P<head>[A-Z][\w'\u2019&/\-]*(?:\s+(?:[A-Z][\w'\u2019&/\-]*|of|and|or|to|the|for|in|on|by|"
                     r"with|"
                     r"upon|from)){0,7})[.:]\s+\S")
_NOT_HEADING = re.compile(r"/s/|\bby:|\bname:|\btitle:|\bdate:|\bpage\s+\d|^\W*$|\.{4,}|https?://|@", re.IGNORECASE)


@dataclass(frozen=True)
class Heading:
    offset: int  # where the heading's line starts in the page text
    text: str
    numbered_depth: int  # 0 unnumbered, 1 for "12.", 2 for "12.1", ...


def section_headings(text: str) -> list[Heading]:
    """The headings of one page's text, in order."""
    headings: list[Heading] = []
    lines = text.split("\n")
    offsets = []
    position = 0
    for line in lines:
        offsets.append(position)
        position += len(line) + 1
    index = 0
    while index < len(lines):
        line = lines[index].strip()
        offset = offsets[index]
        if _LONE_ENUMERATOR.match(line) and index + 1 < len(lines) and lines[index + 1].strip():
            line = f"{line} {lines[index + 1].strip()}"
            index += 1
        heading = _heading(line)
        if heading is not None:
            headings.append(Heading(offset=offset, text=heading[0], numbered_depth=heading[1]))
        index += 1
    return headings


def _heading(line: str) -> tuple[str, int] | None:
    if not line or len(line) > 200 or _NOT_HEADING.search(line):
        return None
    numbered = _NUMBERED.match(line)
    if numbered and numbered.group("rest") and re.search(r"[A-Za-z]{2}", numbered.group("rest")):
        number, rest = numbered.group("number"), numbered.group("rest").strip()
        # "12." is a section, "12.1" its subsection; "(a)" or "b)" an item inside whatever section is open.
        bare = re.sub(r"^(?:section|article|clause|part)\s+", "", number, flags=re.IGNORECASE)
        depth = bare.rstrip(".").count(".") + 1 if bare[:1].isdigit() else 1 if bare[:1].isupper() else 9
        if _capitalised(rest) and len(rest.split()) <= 10 and not rest.endswith((",", ";")):
            return _short(f"{number} {rest.rstrip('.:')}"), depth
        run_in = _RUN_IN.match(rest)
        if run_in and _capitalised(run_in.group("head")):
            return _short(f"{number} {run_in.group('head')}"), depth
        return None
    words = line.split()
    letters = [c for c in line if c.isalpha()]
    if len(words) <= 10 and len(letters) >= 4 and all(c.isupper() for c in letters) and not line.endswith(","):
        return _short(line.rstrip(".:")), 0
    if line.lower().rstrip(".: ") in _PAPER_SECTIONS:
        return line.rstrip(".: "), 0
    return None


def _capitalised(text: str) -> bool:
    words = [w for w in re.findall(r"[A-Za-z][\w'\u2019\-]*", text) if w.lower() not in _CONNECTORS]
    return bool(words) and sum(w[0].isupper() for w in words) >= max(1, 0.75 * len(words))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_HEADING_CHARS else text[:MAX_HEADING_CHARS].rsplit(" ", 1)[0]


class HeadingTrail:
    """The heading in force at each point of a document read page by page: the last section heading, and the
    numbered heading above it when the last one is a subsection ("12. Governing Law > 12.2 Venue")."""

    def __init__(self) -> None:
        self._stack: list[Heading] = []
        self._pending: list[Heading] = []

    def read_page(self, headings: list[Heading]) -> None:
        self._pending = list(headings)

    def at(self, offset: int) -> str:
        """The heading in force at `offset` of the page last given to read_page (call with rising offsets)."""
        while self._pending and self._pending[0].offset <= offset:
            self._push(self._pending.pop(0))
        return " > ".join(h.text for h in self._stack[-2:])

    def _push(self, heading: Heading) -> None:
        depth = heading.numbered_depth
        if depth == 0:
            self._stack = [heading]
            return
        self._stack = [h for h in self._stack if 0 < h.numbered_depth < depth] + [heading]
