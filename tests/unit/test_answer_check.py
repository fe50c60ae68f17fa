"""What counts as an answer: echoed instructions, copied markup and loops are caught; real answers, short or
long, with or without citations, pass."""

from __future__ import annotations

import pytest

from docs_app.pipeline.answer_check import answer_check
from docs_app.pipeline.prompt import SYSTEM_RULES

INSTRUCTIONS = [SYSTEM_RULES]


@pytest.mark.parametrize("text", [
    "The agreement is governed by the laws of the State of Delaware [1].",
    "Yes.",
    "The documents provided do not answer the question.",
    "Either party may terminate on 90 days' written notice [2]; the licensee may also terminate for convenience "
    "after the first anniversary [3]. Termination does not affect accrued payment obligations [2].",
    "Der Vertrag unterliegt deutschem Recht [1].",
    # Long prose that happens to mention sources and rules in its own words.
    "Under the supply agreement, the supplier must deliver within thirty days of each purchase order and must "
    "replace defective goods at its own cost [1]. The buyer pays within forty-five days of invoice [2]. The "
    "agreement runs for three years and renews for one-year terms unless either party gives notice [3]. "
    "Disputes go to arbitration in New York under the AAA rules [4].",
])
def test_real_answers_pass(text: str) -> None:
    check = answer_check(text, instructions=INSTRUCTIONS)
    assert check.usable, check.summary()


def test_echoed_rules_are_caught_even_with_their_citation_examples() -> None:
    echo = ("You answer questions about the user's documents using only the numbered sources given. Rules: "
            "1. Use only facts stated in the sources. Do not use outside knowledge. 2. Cite every claim with the "
            "number of its source in square brackets, like [1] or [2][3].")
    check = answer_check(echo, instructions=INSTRUCTIONS)
    assert not check.usable and "repeats its instructions" in check.problems


def test_copied_markup_is_caught() -> None:
    check = answer_check('<source id="1" title="Lease" page="2">The tenant shall pay', instructions=INSTRUCTIONS)
    assert not check.usable and "copies the prompt's markup" in check.problems
    assert not answer_check("The term is two years.<end_of_turn>", instructions=INSTRUCTIONS).usable


def test_loops_are_caught_short_and_long() -> None:
    short = "The term is the term is the term is the term is the term is the term is the term is the term"
    assert "repeats itself" in answer_check(short, instructions=INSTRUCTIONS).problems
    long = "The licensee shall pay royalties. " * 20
    assert "repeats itself" in answer_check(long, instructions=INSTRUCTIONS).problems


def test_empty_output_is_not_an_answer() -> None:
    assert answer_check("  \n ", instructions=INSTRUCTIONS).problems == ("is empty",)
    assert not answer_check("[1] [2]", instructions=INSTRUCTIONS).usable
