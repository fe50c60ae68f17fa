"""Finding the documents a question names, whatever the phrasing, and only when it names them."""

from __future__ import annotations

from docs_app.pipeline.mentions import (
    DocumentNames,
    Mention,
    Name,
    mention_units,
    mentions_pick,
    mentions_score,
    question_words,
    specificity_from_counts,
    units_written_as_names,
    without_mentions,
)

SUPPLY = DocumentNames(1, (Name("Master Supply Agreement", "title"), Name("Northwind Traders, Inc.", "party"),
                           Name("Quillon Biotech GmbH", "party"), Name("Northwind", "alias"),
                           Name("supply agreement", "type")), effective_date="2019-03-15")
LEASE = DocumentNames(2, (Name("Office Lease", "title"), Name("Harbor Point LLC", "party"),
                          Name("Quillon Biotech GmbH", "party"), Name("lease", "type")))
IP = DocumentNames(3, (Name("Intellectual Property Agreement", "title"), Name("Technology Health, Inc.", "party"),
                       Name("property agreement", "type")))
DOCUMENTS = [SUPPLY, LEASE, IP]
# In how many of the 40 documents' text each word or run occurs: names are rare, clause topics common.
FREQUENCY = {("northwind",): 1, ("quillon",): 2, ("biotech",): 3, ("supply",): 12, ("master",): 20,
             ("lease",): 2, ("office",): 15, ("harbor",): 1, ("point",): 25, ("intellectual",): 35,
             ("property",): 38, ("intellectual", "property"): 35, ("technology",): 20, ("health",): 18,
             ("technology", "health"): 1, ("supply", "agreement"): 3, ("quillon", "biotech"): 2,
             ("harbor", "point"): 1, ("office", "lease"): 1, ("trader",): 2, ("northwind", "trader"): 1}


def named(question: str) -> list[int]:
    units = mention_units(question, DOCUMENTS)
    specificity = {unit: specificity_from_counts(FREQUENCY.get(unit, 40), 40) for unit in units}
    return [m.document_id for m in mentions_pick(mentions_score(question, DOCUMENTS, specificity=specificity))]


def test_a_document_is_found_by_title_party_short_name_or_type_anywhere_in_the_question() -> None:
    assert named("Consider the Master Supply Agreement between Northwind Traders and Quillon; who pays freight?") == [1]
    assert named("who pays freight under the northwind supply agreement") == [1]
    assert named("In our contract with Northwind Traders, Inc., who pays freight?") == [1]
    assert named("Can the tenant sublet under the lease?") == [2]
    assert named("What is the notice period in the Harbor Point lease") == [2]
    assert named("Does the Technology Health agreement allow sublicensing?") == [3]


def test_a_question_naming_no_document_routes_nowhere() -> None:
    assert named("How is intellectual property ownership assigned in this contract?") == []
    assert named("What is the governing law?") == []
    assert named("Is there a cap on liability for technology failures or health claims?") == []


def test_a_party_common_to_several_documents_names_them_together() -> None:
    assert sorted(named("Which agreements do we have with Quillon Biotech?")) == [1, 2]


def test_a_date_names_the_document_it_is_dated() -> None:
    units = mention_units("the contract of March 15, 2019", DOCUMENTS)
    scores = mentions_score("the contract of March 15, 2019", DOCUMENTS,
                            specificity={u: 0.0 for u in units})
    assert [m.document_id for m in scores] == [1]


def test_too_many_equally_named_documents_are_no_reference() -> None:
    many = [DocumentNames(i, (Name("Quillon Biotech GmbH", "party"),)) for i in range(1, 6)]
    scores = mentions_score("Quillon", many, specificity={("quillon",): 1.0})
    assert len(scores) == 5 and mentions_pick(scores) == []


def test_the_naming_words_are_taken_out_of_what_is_asked() -> None:
    question = "What is the governing law for the Master Supply Agreement between Northwind Traders and Quillon?"
    units = mention_units(question, DOCUMENTS)
    specificity = {unit: specificity_from_counts(FREQUENCY.get(unit, 40), 40) for unit in units}
    picked = mentions_pick(mentions_score(question, DOCUMENTS, specificity=specificity))
    assert without_mentions(question, picked) == "What is the governing law?"
    assert without_mentions("Who signs?", []) == "Who signs?"


def test_a_phrase_describing_the_named_document_goes_with_its_name_and_the_question_stays() -> None:
    question = "Can the Northwind supply agreement for widget distribution be terminated for convenience?"
    named = [Mention(1, 2.0, (2, 3, 4))]
    assert without_mentions(question, named, describing={"widget"}) == "Can be terminated for convenience?"
    # Without a describing word the phrase may be what is asked: kept.
    asked = "Is there a cap in the Northwind agreement for indirect damages?"
    assert without_mentions(asked, [Mention(1, 2.0, (6,))]) == "Is there a cap for indirect damages?"
    # Read as undecided, it goes too.
    assert without_mentions(asked, [Mention(1, 2.0, (6,))], every_phrase=True) == "Is there a cap?"
    # Unpunctuated, the describing phrase ends where the question asks what the document says.
    unpunctuated = "Does the Northwind agreement for Widget Distribution include an exclusivity clause?"
    assert without_mentions(unpunctuated, [Mention(1, 2.0, (2, 3))], describing={"widget"}) \
        == "Does include an exclusivity clause?"


def test_question_words_fold_possessives_and_plurals() -> None:
    assert [w.token for w in question_words("Papa John's licenses")] == ["papa", "john", "license"]


def test_an_initialism_with_dots_is_one_word() -> None:
    words = question_words("Is A.B. Watley in the U.S.A. or I.B.M, v.3?")
    assert [w.token for w in words] == ["is", "ab", "watley", "in", "the", "usa", "or", "ibm", "v", "3"]
    assert [w.raw for w in words][1] == "A.B."


def test_a_name_misspelt_by_one_letter_names_its_document_when_written_as_a_name() -> None:
    assert named("Who pays freight under the Nortwhind agreement?") == [1]  # two letters swapped
    assert named("Who pays freight under the Northwnd agreement?") == [1]  # one left out
    assert named("Who pays freight under the nortwhind agreement?") == []  # lower case: a word, not a name
    assert named("Who pays freight under the Mortwhind agreement?") == []  # the first letter is not misspelt
    assert named("Who pays freight under the Nortwhimd agreement?") == []  # two letters off


def test_a_legal_form_after_the_comma_of_a_name_goes_with_it() -> None:
    question = "What is the governing law for the agreement with Northwind Traders, Inc.?"
    units = mention_units(question, DOCUMENTS)
    specificity = {unit: specificity_from_counts(FREQUENCY.get(unit, 40), 40) for unit in units}
    picked = mentions_pick(mentions_score(question, DOCUMENTS, specificity=specificity))
    assert [m.document_id for m in picked] == [1]
    assert without_mentions(question, picked) == "What is the governing law?"


def test_a_company_written_with_its_legal_form_beside_a_name_goes_with_it() -> None:
    """"GA Retail, Inc.": a party the metadata does not list, written beside one it does; its words are not what
    is asked, however common "Retail" is in the scope."""
    question = ("What is the governing law for the agreement between Northwind Traders, Inc., GA Retail, Inc. and "
                "Quillon Biotech GmbH?")
    named = [Mention(1, 2.0, (9, 10, 16, 17))]  # Northwind Traders, Quillon Biotech
    assert without_mentions(question, named) == "What is the governing law?"
    # Without its legal form it is just words, and may be what is asked.
    assert without_mentions("What does the Northwind Traders agreement say about retail pricing?",
                            [Mention(1, 2.0, (3, 4))]) == "What does say about retail pricing?"
    # "as" is a legal form only when written as one.
    assert without_mentions("Does the Northwind Traders agreement count rebates as revenue?",
                            [Mention(1, 2.0, (2, 3))]) == "Does count rebates as revenue?"


def test_units_written_as_names_are_words_of_parties_written_in_capitals() -> None:
    """Counted by the documents that bear them as names: a party's words written in capitals, not a title's
    (many contracts are a "Supply Agreement"), nor words in lower case among capitalised ones."""
    assert units_written_as_names("Which law governs the Master Supply Agreement with Quillon?", DOCUMENTS) == {
        ("quillon",)}
    assert units_written_as_names("Which law governs the supply deal with quillon in New York?", DOCUMENTS) == set()


def test_a_keyword_names_a_document_only_when_the_question_writes_it_as_a_name() -> None:
    """Keywords are capitalised words of a document's opening ("Knowledge", "Rural"): the same word in lower case
    in a question is a word, not a name."""
    survey = DocumentNames(7, (Name("Knowledge", "keyword"), Name("Attitudes", "keyword"), Name("RKI", "keyword")))

    def picked(question: str) -> list[int]:
        units = mention_units(question, [survey])
        scores = mentions_score(question, [survey], specificity={unit: 1.0 for unit in units})
        return [m.document_id for m in mentions_pick(scores)]

    assert picked("Do patterns of knowledge and attitudes exist among unvaccinated seniors?") == []
    assert picked("What does the RKI measure in the survey?") == [7]


def test_a_describing_phrase_after_a_describing_word_taken_with_the_name_goes_too() -> None:
    """"... and A.B. Watley, Inc. for market data software": the name matched is the first party; the second is
    taken as describing it, and the phrase after that second party's legal form describes the contract too."""
    question = ("What is the governing law for the agreement between Northwind Traders, Inc. and A.B. Watley, Inc. "
                "for market data software?")
    named = [Mention(1, 2.0, (9, 10))]  # "Northwind Traders"
    assert without_mentions(question, named, describing={"ab", "watley", "software"}) == "What is the governing law?"
    # The phrase holds no describing word: it may be what is asked, and stays.
    assert without_mentions(question, named, describing={"ab", "watley"}) \
        == "What is the governing law for market data software?"


def test_a_name_written_joined_in_camel_case_names_its_document() -> None:
    """File names write parties joined ("NorthwindTradersInc_2019-EX-10"), and people paste them."""
    question = "What is the governing law in NorthwindTraders?"
    units = mention_units(question, DOCUMENTS)
    assert ("northwind", "trader") in units
    specificity = {unit: specificity_from_counts(FREQUENCY.get(unit, 1), 40) for unit in units}
    picked = mentions_pick(mentions_score(question, DOCUMENTS, specificity=specificity))
    assert [m.document_id for m in picked] == [1]
    assert without_mentions(question, picked) == "What is the governing law?"
    # Joined words that do not stand together in a name are no reference to it.
    assert ("trader", "northwind") not in mention_units("What is the governing law in TradersNorthwind?", DOCUMENTS)


def test_a_date_names_the_document_made_on_it_and_leaves_what_is_asked() -> None:
    """The effective date, written any way, or its month and year: evidence, and no part of what is asked."""
    for question in ("What is the governing law of the agreement dated March 15, 2019?",
                     "What is the governing law of our March 2019 supply agreement?"):
        units = mention_units(question, DOCUMENTS)
        specificity = {unit: specificity_from_counts(FREQUENCY.get(unit, 40), 40) for unit in units}
        picked = mentions_pick(mentions_score(question, DOCUMENTS, specificity=specificity))
        assert [m.document_id for m in picked] == [1], question
        assert without_mentions(question, picked) == "What is the governing law?", question
    # Another month of the year is no evidence.
    assert mentions_score("What is the governing law of our April 2019 deal?", DOCUMENTS, specificity={}) == []
