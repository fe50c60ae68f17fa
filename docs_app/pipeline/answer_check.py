"""Is the model's output an answer? Checks for the ways a weak or broken model fails while looking finished.

Pure: no Django, no model. A small base model (the packaged stand-in) or a damaged GGUF often writes text that
is not an answer: it echoes its instructions ("Rules: 1. Use only facts..."), copies the prompt's markup
(`<source id=...>`, turn markers), or loops on one phrase. Shown as a finished, cited answer, such output
misleads: "[1] or [2][3]" inside echoed rules looks like citations. So the answer service checks the output
before it is stored and shown, and a degenerate one is labelled and cites nothing.

The checks look at the output against the prompt the model was given, never at a question's wording.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Shingles of this many words: long enough that ordinary phrasing rarely repeats them by chance, short enough
# to catch a rule echoed with small changes.
_SHINGLE = 6
# Share of the output's shingles found in the instructions: above this, the model is reciting them; and at least
# this many shingles (about a dozen words), so that saying what rule 3 asks ("the documents provided do not
# answer the question") is not mistaken for reciting it.
_ECHO_SHARE = 0.3
_ECHO_MIN_SHINGLES = 8
# The prompt's markup and chat-turn tokens; an answer never needs them.
_MARKUP = re.compile(r"</?\s*source\b|<\s*/?\s*(start|end)_of_turn\s*>|<\s*/?\s*(system|user|assistant|model)\s*>",
                     re.IGNORECASE)
# zlib compresses a loop far better than prose: measured prose answers compress to 0.45-0.7 of their size, a
# phrase repeated over and over to under 0.2.
_LOOP_RATIO = 0.25
_LOOP_MIN_CHARS = 200
# One shingle appearing this many times is a loop even in a short answer.
_LOOP_REPEATS = 4
_WORD = re.compile(r"\w+", re.UNICODE)
_MARKERS = re.compile(r"\[[\d\s,;\-\u2013]*\]")


@dataclass(frozen=True)
class AnswerCheck:
    usable: bool
    problems: tuple[str, ...]  # plain-language reasons, e.g. "repeats its instructions"

    def summary(self) -> str:
        return " and ".join(self.problems)


def answer_check(text: str, *, instructions: Sequence[str]) -> AnswerCheck:
    """Check `text` (the model's whole output) against `instructions` (the system/rule texts it was given)."""
    problems: list[str] = []
    stripped = text.strip()
    if not _WORD.search(_MARKERS.sub(" ", stripped)):  # nothing but citation markers is no answer either
        return AnswerCheck(usable=False, problems=("is empty",))
    if _MARKUP.search(stripped):
        problems.append("copies the prompt's markup")
    if _echoes(stripped, instructions):
        problems.append("repeats its instructions")
    if _loops(stripped):
        problems.append("repeats itself")
    return AnswerCheck(usable=not problems, problems=tuple(problems))


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _shingles(words: Sequence[str]) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1)]


def _echoes(text: str, instructions: Sequence[str]) -> bool:
    own = _shingles(_words(text))
    given = {shingle for rule in instructions for shingle in _shingles(_words(rule))}
    echoed = sum(1 for shingle in own if shingle in given)
    return echoed >= _ECHO_MIN_SHINGLES and echoed / len(own) >= _ECHO_SHARE


def _loops(text: str) -> bool:
    encoded = text.encode("utf-8")
    if len(encoded) >= _LOOP_MIN_CHARS and len(zlib.compress(encoded, 9)) / len(encoded) < _LOOP_RATIO:
        return True
    counts = Counter(_shingles(_words(text)))
    return bool(counts) and counts.most_common(1)[0][1] >= _LOOP_REPEATS
