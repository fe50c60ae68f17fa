"""The audit page as an auditor reads it (issue 12, point 6): what was asked, by whom, in which collection, which
documents were shown, by name from live rows ("erased" once a row is gone); details as label/value pairs;
filters by person, collection and document name, combined with the others; the names looked up in batches."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from docs_app.models import Answer, AnswerStatus, AuditEvent, Collection, Conversation, Document, Question
from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_record
from docs_app.services.documents import document_delete
from docs_app.services.grants import AUDITORS_GROUP
from tests.harness import logged_in, make_user

pytestmark = pytest.mark.django_db


def _document(collection: Collection, title: str, n: int) -> Document:
    return Document.objects.create(collection=collection, title=title, original_name=f"{title}.pdf",
                                   stored_name=f"s{n}.pdf", sha256=f"{n:02d}" * 32, size_bytes=2048,
                                   status="ready", page_count=3)


def _question(user: User, collection: Collection, text: str, shown: list[Document]) -> Question:
    """A question as the answer worker leaves it: the rows, and the ask and answer events it writes."""
    conversation = Conversation.objects.create(owner=user, title=text[:40])
    conversation.collections.add(collection)
    question = Question.objects.create(conversation=conversation, asked_by=user, text=text)
    # Chunk row ids, as retrieval hands them on; the sources say which document each belongs to.
    chunk_ids = [1000 * question.pk + i for i in range(len(shown))]
    answer = Answer.objects.create(question=question, status=AnswerStatus.DONE, text="It says [1].",
                                   sources=[{"number": i + 1, "chunk_id": chunk_ids[i], "document_id": d.pk,
                                             "page": 1} for i, d in enumerate(shown)])
    actor = Actor(user=user, address="10.0.0.7")
    audit_record(action=Action.ASK, actor=actor, target_type="question", target_id=question.pk,
                 details={"conversation_id": conversation.pk, "retrieved": chunk_ids, "shown": chunk_ids})
    audit_record(action=Action.ANSWER, actor=actor, target_type="answer", target_id=answer.pk, outcome="done",
                 details={"question_id": question.pk, "cited_chunks": chunk_ids[:1]})
    return question


@pytest.fixture
def office() -> dict[str, object]:
    pat, sam = make_user("pat"), make_user("sam")
    auditor = make_user("audrey", Group.objects.get(name=AUDITORS_GROUP))
    duval = Collection.objects.create(name="Duval v Meridian")
    other = Collection.objects.create(name="Estate of Hartley")
    lease, venture, will = (_document(duval, "Office lease Duval", 1), _document(duval, "Joint venture MightyCell", 2),
                            _document(other, "Hartley last will", 3))
    _question(pat, duval, "When does the Duval lease end?", [lease, venture])
    _question(sam, other, "Who are the executors?", [will])
    audit_record(action=Action.PAGE_VIEW, actor=Actor(user=pat), target_type="document", target_id=venture.pk,
                 collection_id=duval.pk, document_id=venture.pk, details={"page": 2})
    # An event naming its document only as the target (older events, commands).
    audit_record(action=Action.VIEW, actor=Actor(user=sam), target_type="document", target_id=will.pk)
    return {"pat": pat, "auditor": auditor, "duval": duval, "lease": lease, "venture": venture}


def _page(client, **params: str) -> str:
    response = client.get("/audit/", params)
    assert response.status_code == 200
    return str(response.content.decode())


def test_question_events_show_what_who_where_and_which_documents_by_name(office) -> None:
    page = _page(logged_in(office["auditor"]))
    assert "When does the Duval lease end?" in page and "Who are the executors?" in page
    assert "Duval v Meridian" in page and "Estate of Hartley" in page
    assert "Office lease Duval" in page and "Joint venture MightyCell" in page
    assert "document “Hartley last will”" in page
    assert "<span class=\"muted\">Shown:</span>" in page and "<span class=\"muted\">Cited:</span>" in page
    assert "document 1" not in page.lower() and "question 1" not in page.lower()
    # Details are label/value pairs, never a Python or JSON dict.
    assert "<dt>Passages shown</dt><dd>2</dd>" in page and "<dt>Page</dt><dd>2</dd>" in page
    assert "{'" not in page and "{&#x27;" not in page and '{"' not in page


def test_an_erased_document_shows_as_erased_and_its_name_is_gone(office) -> None:
    lease = office["lease"]
    lease_id = lease.pk
    document_delete(document=lease, actor=Actor(user=office["pat"]))
    page = _page(logged_in(office["auditor"]))
    assert "Office lease Duval" not in page
    assert f'title="document #{lease_id}">erased' in page
    # The question itself is the asker's words, kept; a question whose conversation is gone is erased too.
    Conversation.objects.filter(owner=office["pat"]).delete()
    page = _page(logged_in(office["auditor"]))
    assert "When does the Duval lease end?" not in page and "question erased" in page


def test_filters_by_person_collection_and_document_name_combine(office) -> None:
    client = logged_in(office["auditor"])
    by_collection = _page(client, collection="duval")
    assert "When does the Duval lease end?" in by_collection and "Who are the executors?" not in by_collection
    assert "3 events," in by_collection  # ask, answer, page view
    by_document = _page(client, document="mightycell")
    assert "When does the Duval lease end?" in by_document and "document.page_view" in by_document
    assert "Who are the executors?" not in by_document
    combined = _page(client, user="PAT", collection="Duval", document="MightyCell", action=Action.ASK)
    assert "1 event," in combined and "When does the Duval lease end?" in combined
    assert "0 events" in _page(client, user="sam", collection="Duval")
    assert "0 events" in _page(client, document="no such title")
    assert "0 events" in _page(client, document="mightycell", until="2000-01-01")


def test_the_export_records_the_ids_a_name_matched_not_the_name(office) -> None:
    client = logged_in(office["auditor"])
    response = client.get("/audit/export.csv", {"collection": "Duval"})
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert "Duval v Meridian" not in body and "When does the Duval" not in body
    export = AuditEvent.objects.filter(action=Action.AUDIT_EXPORT).get()
    assert export.details["filters"] == {"collection_ids": [office["duval"].pk]}
    assert "Duval" not in str(export.details)


def test_names_are_looked_up_in_batches_not_per_event(office) -> None:
    client = logged_in(office["auditor"])
    _page(client)  # the chain's first verification is done once
    with CaptureQueriesContext(connection) as few:
        _page(client)
    duval, pat = office["duval"], office["pat"]
    for n in range(12):
        _question(pat, duval, f"Question {n} about the lease?", [_document(duval, f"Exhibit {n}", 10 + n)])
    with CaptureQueriesContext(connection) as many:
        page = _page(client)
    assert "Question 11 about the lease?" in page and "Exhibit 11" in page
    # The chain check may take a few more statements for the new events; the names none per event.
    def names(queries: CaptureQueriesContext) -> list[str]:
        return [q["sql"] for q in queries.captured_queries if "docs_app_audit" not in q["sql"]]

    names_before = names(few)
    assert len(names(many)) == len(names_before), "\n".join(names(many))


def test_an_auditor_lands_on_the_audit_page_and_sees_no_ask_tab(office) -> None:
    client = logged_in(office["auditor"])
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/audit/"
    page = _page(client)
    assert 'href="/ask/"' not in page and 'href="/audit/"' in page
    # Anyone else keeps the library and Ask.
    library = logged_in(office["pat"]).get("/")
    assert library.status_code == 200 and 'href="/ask/"' in library.content.decode()
