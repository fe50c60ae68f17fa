"""Asking through the real stack: Django test client (web) -> Redis -> the suite's Celery worker (MiniLM, Chroma
server, the stand-in Gemma GGUF via llama-cpp-python) -> Redis Stream -> the SSE endpoint."""

from __future__ import annotations

import json

import pymupdf
import pytest
from django.test import Client
from django.urls import reverse

from docs_app.models import (
    Answer,
    AnswerStatus,
    AuditEvent,
    Chunk,
    Citation,
    Conversation,
    Grant,
    Question,
    Role,
)
from docs_app.pipeline.answer_check import answer_check
from docs_app.pipeline.normalize import comparable
from docs_app.pipeline.prompt import SYSTEM_RULES, citations_parse
from docs_app.selectors.retrieval import chunks_retrieve
from docs_app.services.answering import answer_generate
from docs_app.services.audit import Action
from docs_app.services.model_status import MODEL_STATUS_KEY
from docs_app.services.streams import AnswerBusy, redis_client, stream_exists
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, cuad
from tests.harness import CollectionFactory, DocumentFactory, UserFactory, ask, stream_events, wait_until
from workers.tasks import answer_generate_task

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ON_TOPIC = JOINT_VENTURE_QUESTION
ABSENT = "What dose of amoxicillin is recommended for a child with acute otitis media?"


def test_question_streams_tokens_and_sources_and_stores_valid_citations(
        user_factory: UserFactory, collection_with_grant: CollectionFactory,
        ingested_document: DocumentFactory) -> None:
    user = user_factory("alice")
    collection = collection_with_grant("Matter MightyCell", user, Role.VIEWER)
    document = ingested_document(collection, cuad(JOINT_VENTURE))
    client = Client()
    client.force_login(user)

    asked = ask(client, ON_TOPIC)
    events = stream_events(client, asked["stream_url"])

    kinds = [e.event for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done"
    assert "token" in kinds
    sources = json.loads(events[0].data)
    assert sources
    with pymupdf.open(cuad(JOINT_VENTURE)) as pdf:
        page_texts = [page.get_text() for page in pdf]
    for source in sources:
        chunk = Chunk.objects.get(pk=source["chunk_id"])
        assert source["document_id"] == document.pk == chunk.document_id
        assert source["page"] == chunk.page and 1 <= chunk.page <= len(page_texts)
        # The passage really is on that page of the PDF (compared as word characters: passages are stored
        # normalised, e.g. this contract's Greek question marks read as semicolons).
        assert comparable(source["text"]) in comparable(page_texts[chunk.page - 1])
        assert source["url"] == f"/documents/{document.pk}/?page={chunk.page}&chunk={chunk.pk}"
    # The term clause (page 2) is among the evidence.
    assert any("February 28, 2004" in " ".join(s["text"].split()) for s in sources)

    streamed = "".join(e.data for e in events if e.event == "token").strip()
    done = json.loads(events[-1].data)
    answer = Answer.objects.get(pk=asked["answer_id"])
    assert answer.status == AnswerStatus.DONE == done["status"]
    assert answer.text == done["text"] == streamed
    assert answer.model_name
    # Citations: exactly the answer's valid markers, and none when the output is not an answer at all (the
    # stand-in base model usually echoes its instructions, whose "[1] or [2][3]" must not count).
    _segments, cited = citations_parse(answer.text, valid_numbers={s["number"] for s in sources})
    check = answer_check(answer.text, instructions=[SYSTEM_RULES])
    if not check.usable:
        cited = []
        assert done["unusable"] == check.summary()
    stored = {c.number: c for c in Citation.objects.filter(answer=answer)}
    assert sorted(stored) == cited == [c["number"] for c in done["citations"]]
    by_number = {s["number"]: s for s in sources}
    for number, citation in stored.items():
        assert (citation.chunk_id, citation.page) == (by_number[number]["chunk_id"], by_number[number]["page"])
    # The stored sources carry ids and places, not the passage text.
    assert answer.sources and all("text" not in s for s in answer.sources)

    ask_event = AuditEvent.objects.get(action=Action.ASK, actor=user)
    assert set(ask_event.details["shown"]) == {s["chunk_id"] for s in sources}
    assert set(ask_event.details["shown"]) <= set(ask_event.details["retrieved"])
    # Written by the worker, yet it carries the asker's address from the original request.
    assert ask_event.client_address == "127.0.0.1"
    answer_event = AuditEvent.objects.get(action=Action.ANSWER, target_id=str(answer.pk))
    assert (answer_event.outcome, answer_event.client_address) == ("done", "127.0.0.1")
    status = json.loads(redis_client().get(MODEL_STATUS_KEY) or "{}")
    assert status["pid"] > 0 and status["loaded_at"] and status["sha256"]

    # Resume: from a mid-stream id, exactly the remaining events come back, with the same ids.
    middle = len(events) // 2
    resumed = stream_events(client, asked["stream_url"], last_event_id=events[middle].id)
    assert resumed == events[middle + 1:]

    # Redelivery of a task whose worker died mid-answer: the stream announces a restart, the answer is
    # written again from scratch, and the question is audited once.
    Answer.objects.filter(pk=answer.pk).update(status=AnswerStatus.STREAMING)
    answer_generate_task.delay(answer.pk)
    wait_until(lambda: Answer.objects.get(pk=answer.pk).status == AnswerStatus.DONE, timeout_s=120,
               what="the redelivered answer")
    again = stream_events(client, asked["stream_url"], last_event_id=events[-1].id)
    assert again[0].event == "restart" and again[1].event == "sources" and again[-1].event == "done"
    assert [e.event for e in again].count("restart") == 1
    assert AuditEvent.objects.filter(action=Action.ASK, actor=user).count() == 1
    answer.refresh_from_db()
    _segments, cited = citations_parse(answer.text, valid_numbers={s["number"] for s in sources})
    usable = answer_check(answer.text, instructions=[SYSTEM_RULES]).usable
    assert sorted(Citation.objects.filter(answer=answer).values_list("number", flat=True)) == (cited if usable else [])

    # Rendered from the DB without JavaScript: status, and either the text with only valid citation links, or
    # (output that is no answer) a plain statement of that instead of the text.
    page = client.get(asked["conversation_url"]).content.decode()
    assert f'data-answer-id="{answer.pk}"' in page
    assert '<span class="answer-status">done</span>' in page
    if usable:
        assert page.count('class="citation"') == sum(len(s.source_numbers) for s in _segments)
    else:
        assert 'class="unusable"' in page and 'class="citation"' not in page
        assert "Rules:" not in page.split('class="unusable"', 1)[1].split("</article>", 1)[0]

    # A follow-up in the same conversation runs the whole path again (retrieval in the scene of the previous
    # question: tests/unit/test_retrieval.py pins how that query is composed) and is audited on its own.
    conversation_id = int(asked["conversation_url"].rstrip("/").rsplit("/", 1)[1])
    follow = client.post(reverse("question_create", args=[conversation_id]),
                         {"question": "And who may terminate it early?"}, HTTP_ACCEPT="application/json")
    assert follow.status_code == 201, follow.content
    follow_events = stream_events(client, follow.json()["stream_url"])
    assert follow_events[-1].event == "done"
    follow_sources = json.loads(follow_events[0].data)
    assert follow_sources and {s["document_id"] for s in follow_sources} == {document.pk}
    assert AuditEvent.objects.filter(action=Action.ASK, actor=user).count() == 2


def test_question_nothing_answers_abstains_and_shows_nearest_passages(
        user_factory: UserFactory, collection_with_grant: CollectionFactory,
        ingested_document: DocumentFactory) -> None:
    user = user_factory("bob")
    collection = collection_with_grant("Matter contracts only", user, Role.VIEWER)
    ingested_document(collection, cuad(JOINT_VENTURE))
    client = Client()
    client.force_login(user)

    asked = ask(client, ABSENT)
    events = stream_events(client, asked["stream_url"])
    assert [e.event for e in events] == ["sources", "token", "done"]
    nearest = json.loads(events[0].data)
    assert nearest and all(s["nearest"] for s in nearest)
    answer = Answer.objects.get(pk=asked["answer_id"])
    assert answer.status == AnswerStatus.ABSTAINED == json.loads(events[-1].data)["status"]
    assert "do not answer" in answer.text
    assert not Citation.objects.filter(answer=answer).exists()
    assert AuditEvent.objects.get(action=Action.ANSWER, target_id=str(answer.pk)).outcome == "abstained"
    page = client.get(asked["conversation_url"]).content.decode()
    assert 'class="abstained"' in page and '<span class="answer-status">abstained</span>' in page

    # Someone who can read nothing at all gets the same plain abstention, and no passage.
    loner = Client()
    loner.force_login(user_factory("carol"))
    asked = ask(loner, ON_TOPIC)
    events = stream_events(loner, asked["stream_url"])
    assert json.loads(events[0].data) == []
    assert Answer.objects.get(pk=asked["answer_id"]).status == AnswerStatus.ABSTAINED


def test_outsider_sees_no_conversation_stream_or_chunk_of_another_collection(
        user_factory: UserFactory, collection_with_grant: CollectionFactory,
        ingested_document: DocumentFactory) -> None:
    owner, outsider, walled = user_factory("dana"), user_factory("erin"), user_factory("frank")
    secret = collection_with_grant("Matter secret", owner, Role.VIEWER)
    collection_with_grant("Matter of the outsider", outsider, Role.MANAGER)
    Grant.objects.create(collection=secret, user=walled, role=Role.VIEWER)
    document = ingested_document(secret, cuad(JOINT_VENTURE))
    owner_client = Client()
    owner_client.force_login(owner)
    asked = ask(owner_client, ON_TOPIC)

    intruder = Client()
    intruder.force_login(outsider)
    assert intruder.get(asked["conversation_url"]).status_code == 404
    assert intruder.get(asked["stream_url"]).status_code == 404
    assert intruder.post(reverse("question_create", args=[Answer.objects.get(pk=asked["answer_id"])
                                                          .question.conversation_id]),
                         {"question": "and?"}).status_code == 404

    form = intruder.get(reverse("ask")).content.decode()
    assert "Matter of the outsider" in form and "Matter secret" not in form

    # Retrieval: asking for the secret collection by id is a wish, not a grant.
    assert chunks_retrieve(user=outsider, query=ON_TOPIC) == []
    assert chunks_retrieve(user=outsider, query=ON_TOPIC, collection_ids=[secret.pk]) == []
    assert chunks_retrieve(user=owner, query=ON_TOPIC)[0].document_id == document.pk
    # An ethical wall beats the viewer grant the moment it exists.
    assert chunks_retrieve(user=walled, query=ON_TOPIC)
    Grant.objects.filter(collection=secret, user=walled).update(role=Role.DENY)
    assert chunks_retrieve(user=walled, query=ON_TOPIC) == []

    # The owner's stream still ends normally; revoke the grant and the sources are no longer relayed.
    wait_until(lambda: Answer.objects.get(pk=asked["answer_id"]).status in {AnswerStatus.DONE,
                                                                             AnswerStatus.ABSTAINED},
               timeout_s=120, what="the answer")
    Grant.objects.filter(collection=secret, user=owner).delete()
    events = stream_events(owner_client, asked["stream_url"])
    assert json.loads(events[0].data) == []
    assert json.loads(events[-1].data)["citations"] == []


def test_a_second_run_of_an_answer_waits_for_the_lease_of_the_first(services: None,
                                                                    user_factory: UserFactory) -> None:
    user = user_factory("dave")
    question = Question.objects.create(conversation=Conversation.objects.create(owner=user, title="t"),
                                       asked_by=user, text=ON_TOPIC)
    answer = Answer.objects.create(question=question)
    # Another run (a duplicate delivery, or a dead run whose lease has not lapsed) holds the answer.
    other = redis_client().lock(f"docs:answer:{answer.pk}:lease", timeout=60, blocking=False)
    assert other.acquire()
    with pytest.raises(AnswerBusy):
        answer_generate(answer_id=answer.pk)
    answer.refresh_from_db()
    assert answer.status == AnswerStatus.PENDING  # untouched: no restart, no interleaved tokens
    assert not stream_exists(answer_id=answer.pk)
    other.release()
    answer_generate(answer_id=answer.pk)  # the lease is free: this run writes the answer
    answer.refresh_from_db()
    assert answer.status == AnswerStatus.ABSTAINED  # the user reads no collection
