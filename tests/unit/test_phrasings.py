"""The benchmark's natural phrasings: deterministic, and each one names the contract the way it says."""

from __future__ import annotations

from bench.phrasings import PHRASINGS, parse, rephrase

QUESTION = ("Consider the Cooperation Agreement between HPIL ENERGYTECH Inc. and GINARES GROUP AG for Renewable "
            "Energy Projects; What is the governing law for this contract?")


def test_parse_splits_description_title_parties_and_question() -> None:
    parsed = parse(QUESTION)
    assert parsed.title == "Cooperation Agreement"
    assert parsed.parties == ("HPIL ENERGYTECH Inc.", "GINARES GROUP AG")
    assert parsed.ask == "What is the governing law for this contract?"
    many = parse("Consider the Agency Agreement between A, Inc., B Retail, LLC, and C Bank, FSB; Who pays?")
    assert many.parties == ("A, Inc.", "B Retail, LLC", "C Bank, FSB")


FILE = "HPILHOLDING_01_07_2015-EX-99.1-COOPERATION AGREEMENT.PDF"


def test_every_phrasing_is_deterministic_and_keeps_the_question() -> None:
    for phrasing in PHRASINGS:
        first = rephrase(QUESTION, phrasing, key="q1", file_name=FILE)
        assert first == rephrase(QUESTION, phrasing, key="q1", file_name=FILE)
        assert "governing law" in first.lower()
    assert rephrase(QUESTION, "benchmark", key="q1") == QUESTION
    assert rephrase(QUESTION, "unnamed", key="q1") == "What is the governing law for this contract?"


def test_phrasings_name_the_contract_where_and_how_they_say() -> None:
    first = rephrase(QUESTION, "named_first", key="q1")
    assert first.lower().index("cooperation") < first.lower().index("governing") and ";" not in first
    last = rephrase(QUESTION, "named_last", key="q1")
    assert last.lower().index("governing") < last.lower().index("cooperation") and ";" not in last
    party = rephrase(QUESTION, "one_party", key="q1").lower()
    assert ("hpil" in party) != ("ginares" in party)
    short = rephrase(QUESTION, "short_name", key="q1").lower()
    assert "inc." not in short and " ag" not in short
    pasted = [rephrase(QUESTION, "file_name", key=f"q{i}", file_name=FILE) for i in range(8)]
    assert all("HPILHOLDING_01_07_2015-EX-99.1-COOPERATION AGREEMENT" in text and "ginares" not in text.lower()
               for text in pasted)
    assert len(set(pasted)) > 1
