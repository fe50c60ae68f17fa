"""The keyword index in the app's database: scope words filled at ingestion and by the migration, term counts
read through the index's own stemming, and keyword rankings that only ever hold readable, READY passages."""

from __future__ import annotations

import pytest
from django.db import connection

from docs_app.models import Chunk, Collection, Document, DocumentStatus, Grant, Role, chunk_keyword_scope
from docs_app.selectors.keywords import estimates_forget, fts5_rows, term_rows
from docs_app.selectors.retrieval import ScopeIndex
from docs_app.selectors.search import passages_search
from tests.conftest import on_postgresql
from tests.harness import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_estimates() -> None:
    estimates_forget()

TEXTS = ["The licensee shall pay royalties quarterly.", "Termination for convenience on notice.",
         "Royalties are paid in dollars.", "Governing law is Delaware."]


def _document(collection: Collection, name: str, *, status: str = DocumentStatus.READY) -> Document:
    document = Document.objects.create(collection=collection, title=name, original_name=f"{name}.pdf",
                                       stored_name=name, sha256=name.ljust(64, "0"), size_bytes=1, status=status,
                                       chunk_count=len(TEXTS))  # as ingestion writes it with the chunks
    Chunk.objects.bulk_create(
        Chunk(document=document, ordinal=i, page=1, char_start=0, char_end=len(text), text=text, embedding=b"",
              keyword_scope=chunk_keyword_scope(collection_id=collection.pk, document_id=document.pk, ordinal=i))
        for i, text in enumerate(TEXTS))
    return document


@pytest.mark.skipif(on_postgresql(), reason="SQLite's FTS5 index; PostgreSQL's GIN index is what the retrieval, "
                    "search and erasure tests run through under make test-postgres")
def test_rankings_hold_only_readable_ready_passages_and_term_counts_follow_stemming() -> None:
    a, b = Collection.objects.create(name="A"), Collection.objects.create(name="B")
    in_a, in_b = _document(a, "a"), _document(b, "b")
    _document(a, "pending", status=DocumentStatus.EMBEDDING)
    assert term_rows(["royalty", "terminated", "absent"]) == {"royalty": 6, "terminated": 3, "absent": 0}
    rows = fts5_rows(["royalty", "termination"], collection_ids=[a.pk], limit=10)
    assert {document for _, document in rows} == {in_a.pk} and len(rows) == 3
    assert {d for _, d in fts5_rows(["royalty"], collection_ids=[a.pk, b.pk], limit=10)} == {in_a.pk, in_b.pk}
    assert {d for _, d in fts5_rows(["royalty"], collection_ids=[a.pk, b.pk], limit=10,
                                    document_ids=[in_b.pk])} == {in_b.pk}
    heads = fts5_rows(["royalty", "termination", "delaware"], collection_ids=[a.pk, b.pk], limit=10, head_chunks=1)
    assert {chunk for chunk, _ in heads} == set(Chunk.objects.filter(ordinal=0, document__in=[in_a, in_b])
                                                 .values_list("id", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("SELECT keyword_scope FROM docs_app_chunk WHERE document_id = %s AND ordinal = 1", [in_b.pk])
        assert cursor.fetchone()[0] == f"c{b.pk} d{in_b.pk} o1"


def test_every_index_and_guard_trigger_survives_the_migrations() -> None:
    # A migration that adds a column with a default makes Django rebuild the table on SQLite, which drops the
    # table's triggers: the keyword indexes would silently stop following the rows (it happened to Chunk.heading).
    if connection.vendor != "sqlite":
        pytest.skip("SQLite keeps these as triggers")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        triggers = {row[0] for row in cursor.fetchall()}
    expected = {f"docs_app_chunk_fts_{event}" for event in ("ai", "ad", "au")}
    expected |= {f"docs_app_document_names_{event}" for event in ("ai", "ad", "au")}
    assert expected | {"audit_no_update", "audit_no_delete", "audit_no_replace"} <= triggers


def test_scope_counts_of_words_and_phrases_follow_the_documents_as_they_come_and_go() -> None:
    """The counts document-aware ranking uses (selectors.keywords.occurrences on SQLite, one statement on
    PostgreSQL): passages and documents of the scope holding a word or phrase, READY documents only."""
    from docs_app.selectors.retrieval import ScopeIndex

    a, b = Collection.objects.create(name="A"), Collection.objects.create(name="B")
    first, _elsewhere = _document(a, "first"), _document(b, "elsewhere")
    _document(a, "pending", status=DocumentStatus.EMBEDDING)
    scope = ScopeIndex(collection_ids=[a.pk], document_ids=None)
    assert scope.document_frequency({("royalties",), ("governing", "law"), ("law", "governing"), ("absent",)}) == {
        ("royalties",): 1, ("governing", "law"): 1, ("law", "governing"): 0, ("absent",): 0}
    assert scope.term_shares(["royalties", "delaware"], document_ids=None) == {"royalties": 0.5, "delaware": 0.25}

    second = _document(a, "second")  # written after the counts above were read
    wider = ScopeIndex(collection_ids=[a.pk, b.pk], document_ids=None)
    assert wider.document_frequency({("royalties",)}) == {("royalties",): 3}
    assert ScopeIndex(collection_ids=[a.pk], document_ids=[second.pk]).term_shares(
        ["convenience"], document_ids=None) == {"convenience": 0.25}

    first.delete()
    assert ScopeIndex(collection_ids=[a.pk], document_ids=None).document_frequency({("royalties",)}) == {
        ("royalties",): 1}


def test_words_of_documents_names_count_as_occurring_in_them() -> None:
    """A file name's words ("EX", "2020") are in few texts but in many names: counted there, they single out no
    document, while a word only one name holds still singles out its document."""
    from docs_app.pipeline.mentions import Name, names_text
    from docs_app.selectors.retrieval import ScopeIndex

    a, b = Collection.objects.create(name="A"), Collection.objects.create(name="B")
    for collection, stem in [(a, "ACMETRADE_2020-EX-10"), (a, "BETACORP_2020-EX-10"), (b, "GAMMA_2020-EX-10")]:
        document = _document(collection, stem.lower())
        document.names = names_text([Name(stem, "file")])
        document.save(update_fields=["names"])
    scope = ScopeIndex(collection_ids=[a.pk], document_ids=None)
    assert scope.document_frequency({("ex",), ("2020", "ex"), ("acmetrade",), ("royalties",), ("gamma",)}) == {
        ("ex",): 2, ("2020", "ex"): 2, ("acmetrade",): 1, ("royalties",): 2, ("gamma",): 0}
    # Names alone: what a word written as a name is counted by ("royalties" is in both texts, in no name).
    assert scope.names_frequency({("ex",), ("acmetrade",), ("royalties",), ("gamma",)}) == {
        ("ex",): 2, ("acmetrade",): 1, ("royalties",): 0, ("gamma",): 0}


def test_a_passage_is_found_by_the_words_of_its_section_heading() -> None:
    """A clause rarely repeats its heading's words ("22. Jurisdiction" over "Termination for convenience ..."):
    the keyword side matches the heading too (FTS5's heading column on SQLite, the heading-and-text GIN expression
    on PostgreSQL); exact-phrase search still reads the text alone."""
    collection = Collection.objects.create(name="Headed")
    document = _document(collection, "headed")
    Chunk.objects.filter(document=document, ordinal=1).update(heading="22. Jurisdiction")
    clause = Chunk.objects.get(document=document, ordinal=1)
    scope = ScopeIndex(collection_ids=[collection.pk], document_ids=None)
    assert scope.keyword(["jurisdiction"], limit=5) == [clause.pk]
    royalties = set(Chunk.objects.filter(document=document, ordinal__in=[0, 2]).values_list("id", flat=True))
    assert set(scope.keyword(["jurisdiction", "royalties"], limit=5)) == royalties | {clause.pk}
    reader = make_user("heading-reader")
    Grant.objects.create(collection=collection, user=reader, role=Role.VIEWER)
    assert passages_search(user=reader, text="jurisdiction") == []
    assert len(passages_search(user=reader, text="termination")) == 1
