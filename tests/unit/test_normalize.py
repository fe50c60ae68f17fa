"""Text normalisation for search: ligatures, invisible characters and line-end hyphenation, with every span of
the normalised text mapping back to the characters the PDF gave (highlights depend on it)."""

from __future__ import annotations

import re

import pytest

from docs_app.pipeline.normalize import comparable, text_normalize, text_vocabulary


def spans_back(original: str, normalized: str, mapper) -> list[tuple[str, str]]:
    return [(m.group(), original[slice(*mapper(m.start(), m.end()))]) for m in re.finditer(r"\S+", normalized)]


def test_ligatures_become_letters_and_map_back_to_the_glyph() -> None:
    original = "A speci\ufb01c \ufb02ow of e\ufb00ort"
    result = text_normalize(original)
    assert result.text == "A specific flow of effort"
    assert spans_back(original, result.text, result.original_span) == [
        ("A", "A"), ("specific", "speci\ufb01c"), ("flow", "\ufb02ow"), ("of", "of"), ("effort", "e\ufb00ort")]


def test_soft_hyphens_and_zero_width_characters_are_dropped() -> None:
    original = "pharma\u00adco\u200bkinetics \ufeffdose"
    result = text_normalize(original)
    assert result.text == "pharmacokinetics dose"
    assert result.original_span(0, len("pharmacokinetics")) == (0, original.index(" "))


def test_line_end_hyphenation_joins_fragments_and_keeps_real_compounds() -> None:
    page = "The speci-\n  fic dose of a third-\nparty drug was well-\nknown, see Smith-\nJones."
    vocabulary = text_vocabulary([page, "a third party, a well-known fact"])
    result = text_normalize(page, vocabulary=vocabulary)
    assert result.text == "The specific dose of a third-party drug was well-known, see Smith-Jones."
    pairs = dict(spans_back(page, result.text, result.original_span))
    assert pairs["specific"] == "speci-\n  fic"
    assert pairs["third-party"] == "third-\nparty"


def test_without_a_vocabulary_a_lower_case_continuation_is_joined() -> None:
    assert text_normalize("treat-\nment").text == "treatment"
    assert text_normalize("line ends-\n\nnew paragraph").text == "line ends-\n\nnew paragraph"


def test_compatibility_forms_and_combining_accents_fold() -> None:
    original = "\uff26\uff55\uff4c\uff4c width, x\u00b2, caf\u0065\u0301 and \u2163"
    result = text_normalize(original)
    assert result.text == "Full width, x2, caf\u00e9 and IV"
    assert spans_back(original, result.text, result.original_span)[3] == ("caf\u00e9", "cafe\u0301")


def test_plain_text_is_unchanged_and_maps_one_to_one() -> None:
    original = "Governing law.\n  This Agreement is governed by Delaware law."
    result = text_normalize(original)
    assert result.text == original and not result.edits
    assert result.original_span(3, 9) == (3, 9)


def test_every_span_maps_inside_the_original() -> None:
    original = "\ufb01rst\u00ad line-\nbreak \ufb03 e\u0301 end-\nof x" * 3
    result = text_normalize(original, vocabulary=text_vocabulary([original]))
    for start in range(len(result.text) + 1):
        for end in range(start, min(len(result.text), start + 12) + 1):
            a, b = result.original_span(start, end)
            assert 0 <= a <= b <= len(original)
            assert comparable(result.text[start:end]) in comparable(original[a:b])
    with pytest.raises(ValueError):
        result.original_span(0, len(result.text) + 1)


def test_comparable_ignores_hyphenation_and_glyph_differences() -> None:
    assert comparable("speci-\nﬁc  dose") == comparable("specific dose")
