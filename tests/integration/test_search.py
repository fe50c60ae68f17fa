"""Searching the contents: every word or quoted phrase must match, hits link to the page and passage with the
words marked, only collections the person may read are searched, and each search is audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from docs_app.models import AuditEvent, Chunk, Role
from docs_app.selectors.search import SearchQuery, passages_search
from docs_app.services.audit import Action
from tests.data import JOINT_VENTURE, cuad
from tests.harness import logged_in

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_query_parsing_keeps_phrases_and_quotes_every_term() -> None:
    query = SearchQuery.parse('Doylestown "joint  venture" OR NEAR(x) "')
    assert query.phrases == (("joint", "venture"), ("doylestown",), ("or",), ("near",), ("x",))
    assert query.fts5() == 'text : ("joint venture" AND "doylestown" AND "or" AND "near" AND "x")'
    assert SearchQuery.parse('"" ,;').phrases == ()


def test_search_finds_words_and_phrases_in_readable_collections_only(
        user_factory, collection_with_grant, ingested_document) -> None:
    pat = user_factory("pat")
    outsider = user_factory("olga")
    matter = collection_with_grant("Matter MightyCell", pat, Role.VIEWER)
    document = ingested_document(matter, cuad(JOINT_VENTURE))

    hits = passages_search(user=pat, text="Doylestown")
    assert hits and {hit.document_id for hit in hits} == {document.pk}
    first = hits[0]
    assert "<mark>Doylestown</mark>" in first.snippet
    chunk = Chunk.objects.get(pk=first.chunk_id)
    assert chunk.page == first.page and "Doylestown" in chunk.text
    # A phrase must appear as such; the same words scattered do not match it.
    assert passages_search(user=pat, text='"Lower State Road"')
    assert passages_search(user=pat, text='"Road State Lower"') == []
    # Every word is required.
    assert passages_search(user=pat, text="Doylestown xylophone") == []
    # Another person's collections are not searched, whatever ids they send.
    assert passages_search(user=outsider, text="Doylestown") == []
    assert passages_search(user=outsider, text="Doylestown", collection_ids=[matter.pk]) == []

    client = logged_in(pat)
    page = client.get(reverse("search"), {"q": '"Lower State Road" Doylestown'}).content.decode()
    assert f'href="/documents/{document.pk}/?page={first.page}&amp;chunk=' in page
    assert "<mark>Doylestown</mark>" in page
    event = AuditEvent.objects.filter(action=Action.SEARCH, actor=pat).latest("id")
    assert event.details["query"] == '"Lower State Road" Doylestown' and event.details["hits"] >= 1

    nothing = logged_in(outsider).get(reverse("search"), {"q": "Doylestown"}).content.decode()
    assert "No passage contains" in nothing and "MightyCell" not in nothing


def test_document_text_cannot_inject_markup_into_snippets(user_factory, collection_with_grant, services) -> None:
    from docs_app.models import Document, DocumentStatus

    pat = user_factory("pam")
    matter = collection_with_grant("Matter markup", pat, Role.VIEWER)
    document = Document.objects.create(collection=matter, title="evil.pdf", original_name="evil.pdf",
                                       stored_name="evil", status=DocumentStatus.READY, page_count=1,
                                       sha256="0" * 64, size_bytes=1)
    Chunk.objects.create(document=document, ordinal=0, page=1, char_start=0, char_end=10, embedding=b"",
                         text="Clause <script>alert(1)</script> indemnity <mark>x</mark>")
    hits = passages_search(user=pat, text="indemnity")
    assert hits
    assert "<script>" not in hits[0].snippet and "&lt;script&gt;" in hits[0].snippet
    assert hits[0].snippet.count("<mark>") == 1  # only the matched word, not the document's own tag
