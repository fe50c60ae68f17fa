"""Answers do not outlive access (issue 10, item 2): once any source of an answer is unreadable for the viewer
(a revoked grant, a wall, an erasure), the answer's text is withheld on the page, on its stream and from the
prompt of a follow-up question, since it may quote what the viewer may no longer read."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from docs_app.models import Answer, AnswerStatus, Chunk, Conversation, Document, DocumentStatus, Question
from docs_app.services.actor import Actor
from docs_app.services.answering import _history
from docs_app.services.grants import collection_create, grant_set, wall_set
from docs_app.services.streams import redis_client, stream_key

PASSWORD = "correct horse battery staple"
FIGURE = "the settlement is 4.2 million"


def _sse_events(client: Client, answer: Answer) -> dict[str, list[str]]:
    body = b"".join(client.get(f"/answers/{answer.pk}/stream/").streaming_content).decode()  # type: ignore
    events: dict[str, list[str]] = {}
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
        if "event" in lines:
            events.setdefault(lines["event"], []).append(lines.get("data", ""))
    return events


@pytest.mark.django_db
def test_a_walled_viewer_no_longer_sees_an_old_answer_nor_its_replay(redis_server: str) -> None:
    manager = User.objects.create_user("mgr", password=PASSWORD)
    viewer = User.objects.create_user("vic", password=PASSWORD)
    matter = collection_create(name="Matter A", actor=Actor(user=manager))
    grant_set(collection=matter, role="viewer", user=viewer, actor=Actor(user=manager))
    document = Document.objects.create(collection=matter, title="Settlement memo", original_name="m.pdf",
                                       stored_name="m.pdf", sha256="ab" * 32, size_bytes=1, page_count=1,
                                       status=DocumentStatus.READY)
    chunk = Chunk.objects.create(document=document, ordinal=0, page=1, char_start=0, char_end=30,
                                 text=f"Memo: {FIGURE}.", embedding=b"")
    conversation = Conversation.objects.create(owner=viewer, title="Figures")
    conversation.collections.add(matter)
    first = Question.objects.create(conversation=conversation, asked_by=viewer, text="What is the figure?")
    answer = Answer.objects.create(question=first, status=AnswerStatus.DONE, text=f"The memo says {FIGURE} [1].",
                                   # As the previous version stored them: with the title.
                                   sources=[{"number": 1, "chunk_id": chunk.pk, "document_id": document.pk,
                                             "title": document.title, "page": 1, "nearest": False,
                                             "url": f"/documents/{document.pk}/?page=1&chunk={chunk.pk}"}])
    follow_up = Question.objects.create(conversation=conversation, asked_by=viewer, text="And the date?")
    redis_client().delete(stream_key(answer.pk))
    client = Client()
    client.force_login(viewer)
    page = client.get(f"/ask/{conversation.pk}/").content.decode()
    assert FIGURE in page and "Settlement memo" in page
    replay = _sse_events(client, answer)
    assert FIGURE in json.loads(replay["done"][0])["text"]
    assert _history(follow_up) == [("What is the figure?", answer.text)]

    wall_set(collection=matter, user=viewer, actor=Actor(user=manager))

    assert client.get(f"/documents/{document.pk}/").status_code == 404
    page = client.get(f"/ask/{conversation.pk}/").content.decode()
    assert FIGURE not in page and "Settlement memo" not in page
    assert "This answer is hidden" in page
    replay = _sse_events(client, answer)
    assert FIGURE not in json.dumps(replay)
    done = json.loads(replay["done"][0])
    assert (done["text"], done["citations"], done["withheld"]) == ("", [], True)
    # Nor does it reach the model again as the history of a follow-up question.
    assert _history(follow_up) == []
