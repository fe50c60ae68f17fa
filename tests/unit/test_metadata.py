"""Metadata from a document's first pages: title, type, parties and their short names, date; authors and year
for papers. The texts are shaped like the contracts and papers offices hold (invented names)."""

from __future__ import annotations

from docs_app.pipeline.metadata import DocumentMetadata, Line, dates_written, days_written, metadata_extract

PREAMBLE = """Exhibit 10.4
MASTER SUPPLY AGREEMENT
THIS MASTER SUPPLY AGREEMENT (the "Agreement") is made and entered into as of March 15, 2019 (the "Effective Date")
by and between Northwind Traders, Inc., a Delaware corporation ("Northwind"), and Quillon Biotech GmbH, a company
organized under the laws of Germany (the "Supplier").
WHEREAS, Northwind wishes to purchase products from the Supplier;
"""

TITLE_PAGE = """
COOPERATION AGREEMENT
made by and between
ORVALE ENERGYTECH Inc.
and
BRASKON GROUP AG
January 5, 2015
"""

PAPER = """Journal of Clinical Studies 2019; 12: 301-309
Statin use and delirium after cardiac surgery
Maria Lindqvist1, Tomas A. Berg2 and Hana Okafor1*
1 Department of Anaesthesia, Karolinska University Hospital
Received 2 March 2019; accepted 9 May 2019
Abstract
Background: Delirium is common after cardiac surgery.
"""


def test_a_contract_preamble_gives_title_type_parties_short_names_and_date() -> None:
    meta = metadata_extract(pages=[PREAMBLE], file_name="nw-supply.pdf")
    assert meta.title == "Master Supply Agreement"
    assert meta.doc_type == "supply agreement"
    assert meta.parties == ("Northwind Traders, Inc.", "Quillon Biotech GmbH")
    assert meta.aliases == ("Northwind",)  # "Supplier" is a role, not a name
    assert meta.effective_date == "2019-03-15"
    assert meta.year == 2019


def test_a_title_page_with_parties_on_their_own_lines() -> None:
    meta = metadata_extract(pages=[TITLE_PAGE, "1. Definitions ..."], file_name="scan.pdf")
    assert meta.title == "Cooperation Agreement"
    assert meta.parties == ("ORVALE ENERGYTECH Inc.", "BRASKON GROUP AG")
    assert meta.effective_date == "2015-01-05"


def test_a_paper_gives_its_largest_print_as_title_its_authors_and_year() -> None:
    sized = [Line("Journal of Clinical Studies 2019; 12: 301-309", 8.0),
             Line("Statin use and delirium after cardiac surgery", 16.0),
             Line("Maria Lindqvist1, Tomas A. Berg2 and Hana Okafor1*", 10.0),
             Line("1 Department of Anaesthesia, Karolinska University Hospital", 8.0),
             Line("Background: Delirium is common after cardiac surgery.", 9.0)]
    meta = metadata_extract(pages=[PAPER], file_name="lindqvist2019.pdf", first_page_lines=sized)
    assert meta.title == "Statin use and delirium after cardiac surgery"
    assert meta.authors == ("Maria Lindqvist", "Tomas A. Berg", "Hana Okafor")
    assert meta.year == 2019
    assert not meta.parties


def test_the_file_name_is_the_last_resort_for_a_title() -> None:
    meta = metadata_extract(pages=["page one has only a table of figures 1 2 3"],
                            file_name="ACME_2019-EX-10.1-Distribution Agreement.pdf")
    assert meta.title == "Distribution Agreement"


def test_nothing_is_guessed_from_an_empty_document() -> None:
    meta = metadata_extract(pages=[""], file_name="12345678.pdf")
    assert meta == DocumentMetadata()


def test_metadata_round_trips_through_json_shapes_and_labels_itself() -> None:
    meta = metadata_extract(pages=[PREAMBLE], file_name="nw-supply.pdf")
    assert DocumentMetadata.from_dict(meta.as_dict()) == meta
    assert meta.label() == "Master Supply Agreement - Northwind Traders, Inc.; Quillon Biotech GmbH (2019)"


def test_dates_are_read_in_the_ways_they_are_written() -> None:
    text = "dated 5th day of December, 2007, or December 5, 2007, 12/05/2007, 2007-12-05 and 31 June 2007"
    assert [written.iso for written in days_written(text)] == ["2007-12-05"] * 4
    # A month of a year, with its place; not again inside a whole date.
    question = "In our December 2007 deal (signed 5 December 2007), who pays?"
    assert [(question[d.start:d.end], d.iso) for d in dates_written(question)] == [
        ("December 2007", "2007-12"), ("5 December 2007", "2007-12-05")]


def test_a_between_in_a_paragraph_that_is_no_contract_names_no_parties() -> None:
    abstract = ("Objective: To assess the association between health-related Quality of Life Questionnaire scores "
                "and Survival in Lung Cancer Patients and the Nottingham Health Profile.\n"
                "Methods: We studied 120 patients.")
    assert metadata_extract(pages=[abstract], file_name="12846929.pdf").parties == ()
    letter = "This letter agreement is entered into between Harbor Point LLC and Quillon Biotech GmbH as follows."
    assert metadata_extract(pages=[letter], file_name="letter.pdf").parties == ("Harbor Point LLC",
                                                                                 "Quillon Biotech GmbH")


def test_a_side_described_before_it_is_named_still_gives_its_party() -> None:
    """A side may open with its description ("a joint venture comprised of ...", "the TOWN OF ..."): the company it
    names with its legal form is a party; a jurisdiction after "a" ("a New Jersey Corporation") is not one."""
    preamble = ("AGENCY AGREEMENT\nThis Agency Agreement is made as of April 18, 2018, by and between The Bon-Ton "
                "Stores, Inc. (\u201cMerchant\u201d), on the one hand, and a contractual joint venture comprised of "
                "GA Retail, Inc. (\u201cGA\u201d) and Tiger Capital Group, LLC, on the other hand.\nWHEREAS ...")
    assert metadata_extract(pages=[preamble], file_name="agency.pdf").parties == (
        "The Bon-Ton Stores, Inc.", "GA Retail, Inc.", "Tiger Capital Group, LLC")
    franchise = ("GAS FRANCHISE AGREEMENT\nTHIS AGREEMENT, made and entered into this 17th day of November, 2015, by "
                 "and between the TOWN OF VINTON, VIRGINIA, a Virginia municipal corporation (\u201cGrantor\u201d), "
                 "and ROANOKE GAS COMPANY, a Virginia corporation (\u201cGrantee\u201d).\nWHEREAS ...")
    assert metadata_extract(pages=[franchise], file_name="franchise.pdf").parties == (
        "TOWN OF VINTON, VIRGINIA", "ROANOKE GAS COMPANY")
    lease = ("SITE AGREEMENT\nThis Agreement is entered into by and between Hanover Direct, Inc. and, "
             "a New Jersey Corporation (\u201cHDI\u201d).\nWHEREAS ...")
    assert metadata_extract(pages=[lease], file_name="site.pdf").parties == ("Hanover Direct, Inc.",)
