"""Section headings found in page text, and the heading in force for each chunk."""

from __future__ import annotations

from docs_app.pipeline.chunking import chunk_pages, embedding_text
from docs_app.pipeline.headings import HeadingTrail, section_headings
from docs_app.pipeline.pdf_extract import ExtractedPage

PAGE = """ARTICLE 12 GOVERNING LAW
12.1 Law. This Agreement is governed by the laws of Delaware.
12.2 Venue. Courts in Wilmington have exclusive jurisdiction.
13.
Notices. All notices shall be in writing.
The parties acknowledge that notices may be sent by email, as described in Exhibit B.
By: /s/ Jane Roe
Methods
"""


def test_numbered_capitalised_and_run_in_headings_are_found() -> None:
    found = [h.text for h in section_headings(PAGE)]
    assert found == ["ARTICLE 12 GOVERNING LAW", "12.1 Law", "12.2 Venue", "13. Notices", "Methods"]


def test_a_subsection_carries_its_section() -> None:
    trail = HeadingTrail()
    trail.read_page(section_headings("1. Term\nThe term is one year.\n1.1 Renewal\nIt renews.\n2. Fees\nNone.\n"))
    assert trail.at(0) == "1. Term"
    assert trail.at(len("1. Term\nThe term is one year.\n")) == "1. Term > 1.1 Renewal"
    assert trail.at(10_000) == "2. Fees"


def test_chunks_know_their_heading_across_pages() -> None:
    pages = [ExtractedPage(1, "7. Confidentiality\nEach party keeps the other's secrets."),
             ExtractedPage(2, "This duty survives termination of the agreement for five years.")]
    chunks = chunk_pages(pages, max_tokens=50, overlap_tokens=0, token_len=lambda t: len(t.split()))
    assert [c.heading for c in chunks] == ["7. Confidentiality", "7. Confidentiality"]


def test_the_embedded_text_carries_its_context_within_the_token_budget() -> None:
    text = embedding_text(context="Supply Agreement - Acme | 7. Confidentiality", text="Each  party\nkeeps",
                          token_len=lambda t: len(t.split()), max_context_tokens=5)
    assert text == "Supply Agreement - Acme |\nEach party keeps"
    assert embedding_text(context="", text="a  b", token_len=len, max_context_tokens=5) == "a b"
