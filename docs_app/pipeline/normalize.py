"""Normalise extracted page text for search, keeping a map back to the characters the PDF gave.

PDF text carries glyph-level artefacts that break matching: ligatures ("speciﬁc" with U+FB01 never matches
"specific" in a keyword index or in the embedder's vocabulary), soft hyphens, invisible spaces, full-width and
compatibility forms, and words hyphenated across line ends ("pharmaco-\\nkinetics"). Search and embedding read
the normalised text; highlights need offsets into the text as extracted (the page renderer rebuilds exactly
that), so a `NormalizedText` maps any span of its text back to the original characters.

- Unicode NFKC, per grapheme-like cluster (a character and its combining marks), so one cluster maps to one
  original span whatever it expands to.
- Soft hyphen, zero-width space, word joiner and BOM are dropped.
- A word hyphenated across a line end is joined. Whether the hyphen was a line-breaking device ("speci-\\nfic")
  or part of the word ("third-\\nparty") is decided from the rest of the document when a vocabulary is given:
  joined when the joined word occurs elsewhere, kept when the hyphenated form occurs elsewhere or both halves
  are words in their own right, joined otherwise (a fragment such as "fic" is no word). The line break goes
  either way, so the word is one token again.

Django-free and light (the page-render child imports it).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

_DROPPED = frozenset("\u00ad\u200b\u2060\ufeff")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_LETTERS = r"[^\W\d_]+"
# A letter run, a hyphen (ASCII, U+2010, or a soft hyphen at the end of the line), the line end with any
# indentation, and the letter run that continues the word.
_LINE_END_HYPHEN = re.compile(rf"({_LETTERS})[-\u2010\u00ad][ \t]*\r?\n[ \t]*(?=({_LETTERS}))")
_WORD_OR_COMPOUND = re.compile(rf"{_LETTERS}(?:-{_LETTERS})*")


@dataclass(frozen=True)
class _Edit:
    """Original characters [orig_start, orig_end) became normalised characters [start, end)."""

    start: int
    end: int
    orig_start: int
    orig_end: int


@dataclass(frozen=True)
class NormalizedText:
    text: str
    original_length: int
    edits: tuple[_Edit, ...]  # in order; outside them the text is copied one to one
    edit_starts: tuple[int, ...]  # edits[i].start, for bisection

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The original characters [a, b) that normalised characters [start, end) came from."""
        if not 0 <= start <= end <= len(self.text):
            raise ValueError(f"span {start}:{end} outside 0:{len(self.text)}")
        first = self._original_start(start)
        return first, (first if end == start else self._original_end(end - 1))

    def _original_start(self, index: int) -> int:
        edit = self._edit_at(index)
        if edit is None:
            return index
        if index < edit.end:  # inside a replacement: the whole original cluster
            return edit.orig_start
        return edit.orig_end + (index - edit.end)

    def _original_end(self, index: int) -> int:
        """One past the original characters of normalised character `index`."""
        edit = self._edit_at(index)
        if edit is None:
            return index + 1
        if index < edit.end:
            return edit.orig_end
        return edit.orig_end + (index - edit.end) + 1

    def _edit_at(self, index: int) -> _Edit | None:
        position = bisect_right(self.edit_starts, index) - 1
        return self.edits[position] if position >= 0 else None


def text_vocabulary(texts: Iterable[str]) -> set[str]:
    """Lower-cased words and hyphenated compounds of a document, NFKC-folded, not counting the fragments of
    words hyphenated across line ends (they are what the vocabulary has to judge)."""
    vocabulary: set[str] = set()
    for text in texts:
        text = _LINE_END_HYPHEN.sub(" ", unicodedata.normalize("NFKC", text))
        vocabulary.update(word.lower() for word in _WORD_OR_COMPOUND.findall(text))
    return vocabulary


def text_normalize(text: str, *, vocabulary: set[str] | None = None) -> NormalizedText:
    """NFKC, invisible characters dropped, line-end hyphenation joined; see the module docstring."""
    replacements: list[tuple[int, int, str]] = []  # (orig_start, orig_end, new text), in order
    hyphen_sites = [(m.start(1), m.end(1), m.end(), m.group(1), m.group(2))
                    for m in _LINE_END_HYPHEN.finditer(text)]
    site = 0
    position = 0
    while True:
        next_site = hyphen_sites[site] if site < len(hyphen_sites) else None
        match = _NON_ASCII.search(text, position, next_site[1] if next_site else len(text))
        if match is not None:
            start = match.start()
            end = start + 1
            if unicodedata.combining(text[start]) and start > position:
                start -= 1  # an accent after a plain letter: "e" + U+0301 composes to "\u00e9"
            while end < len(text) and unicodedata.combining(text[end]):
                end += 1
            cluster = text[start:end]
            folded = "" if cluster in _DROPPED else unicodedata.normalize("NFKC", cluster)
            if folded != cluster:
                replacements.append((start, end, folded))
            position = end
            continue
        if next_site is None:
            break
        _word_start, hyphen, continuation, before, after = next_site
        keep = _hyphen_is_part_of_word(before, after, vocabulary)
        replacements.append((hyphen, continuation, "-" if keep else ""))
        position = continuation
        site += 1
    return _apply(text, replacements)


def _hyphen_is_part_of_word(before: str, after: str, vocabulary: set[str] | None) -> bool:
    if after[0].isupper():
        return True  # "Smith-\nJones", "Non-\nExclusive": names and title-case compounds keep their hyphen
    if vocabulary is None:
        return False
    before = unicodedata.normalize("NFKC", before).lower()
    after = unicodedata.normalize("NFKC", after).lower()
    if before + after in vocabulary:
        return False
    return f"{before}-{after}" in vocabulary or (before in vocabulary and after in vocabulary)


def _apply(text: str, replacements: list[tuple[int, int, str]]) -> NormalizedText:
    pieces: list[str] = []
    edits: list[_Edit] = []
    copied_to = 0
    length = 0
    for orig_start, orig_end, new in replacements:
        pieces.append(text[copied_to:orig_start])
        length += orig_start - copied_to
        pieces.append(new)
        edits.append(_Edit(start=length, end=length + len(new), orig_start=orig_start, orig_end=orig_end))
        length += len(new)
        copied_to = orig_end
    pieces.append(text[copied_to:])
    return NormalizedText(text="".join(pieces), original_length=len(text), edits=tuple(edits),
                          edit_starts=tuple(edit.start for edit in edits))


def comparable(text: str) -> str:
    """Text reduced to its word characters after NFKC: equal for a passage and its normalised form whatever
    the hyphenation decision was (used to check that a highlight points at the right characters)."""
    return "".join(re.findall(r"\w+", unicodedata.normalize("NFKC", "".join(
        c for c in text if c not in _DROPPED))))
