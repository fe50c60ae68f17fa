"""A finished answer keeps its source excerpts on reload (issue 12, point 7): the page rendered from the database
shows each source's passage, as the stream did, through the same access check: a passage the reader may no
longer read is not shown, and an answer that drew on one stays withheld."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from docs_app.models import Answer, AnswerStatus, Chunk, Collection, Conversation, Document, DocumentStatus, Question
from docs_app.services.actor import Actor
from docs_app.services.grants import collection_create, grant_revoke, grant_set
from tests.harness import logged_in, make_user

pytestmark = pytest.mark.django_db

MEMO_PASSAGE = "The indemnity cap is twice the annual fees paid under this agreement."
LEASE_PASSAGE = "The tenant shall give ninety days written notice before vacating the premises."


def _source(collection: Collection, title: str, text: str, n: int) -> tuple[Document, Chunk]:
    document = Document.objects.create(collection=collection, title=title, original_name=f"{n}.pdf",
                                       stored_name=f"x{n}.pdf", sha256=f"{n:02d}" * 32, size_bytes=1, page_count=3,
                                       status=DocumentStatus.READY)
    chunk = Chunk.objects.create(document=document, ordinal=0, page=2, char_start=0, char_end=len(text), text=text,
                                 embedding=b"")
    return document, chunk


def _answered(reader: User, collections: list[Collection], sources: list[tuple[Document, Chunk]]) -> Conversation:
    conversation = Conversation.objects.create(owner=reader, title="Caps and notices")
    conversation.collections.add(*collections)
    question = Question.objects.create(conversation=conversation, asked_by=reader, text="What are the limits?")
    Answer.objects.create(question=question, status=AnswerStatus.DONE, text="See the sources [1][2].",
                          sources=[{"number": i + 1, "chunk_id": c.pk, "document_id": d.pk, "page": c.page,
                                    "nearest": False} for i, (d, c) in enumerate(sources)])
    return conversation


def test_a_finished_answer_shows_its_excerpts_on_reload_and_withholds_them_with_access() -> None:
    manager, reader = make_user("mgr"), make_user("rita")
    memos = collection_create(name="Memos", actor=Actor(user=manager))
    leases = collection_create(name="Leases", actor=Actor(user=manager))
    for collection in (memos, leases):
        grant_set(collection=collection, role="viewer", user=reader, actor=Actor(user=manager))
    memo, lease = _source(memos, "Indemnity memo", MEMO_PASSAGE, 1), _source(leases, "Office lease", LEASE_PASSAGE, 2)
    conversation = _answered(reader, [memos, leases], [memo, lease])
    client = logged_in(reader)

    page = client.get(f"/ask/{conversation.pk}/").content.decode()
    assert page.count('class="source-text"') == 2
    assert MEMO_PASSAGE in page and LEASE_PASSAGE in page
    assert "Indemnity memo, page 2" in page

    grant_revoke(grant=leases.grants.get(user=reader), actor=Actor(user=manager))
    page = client.get(f"/ask/{conversation.pk}/").content.decode()
    assert LEASE_PASSAGE not in page and "Office lease" not in page
    assert "This answer is hidden" in page and "See the sources" not in page
    # The source still readable keeps its place and passage; the answer's own text stays withheld.
    assert MEMO_PASSAGE in page and page.count('class="source-text"') == 1


def test_a_long_passage_is_cut_like_the_streamed_panel() -> None:
    reader = make_user("rob")
    matter = collection_create(name="Long", actor=Actor(user=reader))
    long_text = "Whereas the parties agree. " * 60
    conversation = _answered(reader, [matter], [_source(matter, "Recitals", long_text, 3)])
    page = logged_in(reader).get(f"/ask/{conversation.pk}/").content.decode()
    assert long_text not in page and long_text[:600] + "\u2026" in page
