"""The permission matrix: users x {viewer, contributor, manager, wall on the user, wall on one of the user's
groups while another group grants access, revoked grant, no grant, auditor, staff} drive every route with
direct-ID URLs, plus a deleted document, other people's conversations and answers, citations and retrieval.

Zero leaks means: an object in a collection the user cannot read answers 404 exactly like a missing one;
a readable collection with too low a role answers 403; lists and choices never name what is not readable.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User

from docs_app.models import (
    Answer,
    AnswerStatus,
    AuditEvent,
    Chunk,
    Citation,
    Collection,
    Conversation,
    Document,
    DocumentStatus,
    Grant,
    Question,
    Role,
)
from docs_app.selectors.retrieval import chunks_retrieve
from docs_app.services.actor import Actor
from docs_app.services.audit import Action
from docs_app.services.documents import document_delete
from docs_app.services.grants import AUDITORS_GROUP, collection_create, grant_revoke, grant_set, wall_set
from tests.data import WEB_HOSTING, cuad
from tests.harness import ingest, logged_in, make_user, wait_until

READERS = {"viewer": Role.VIEWER, "contributor": Role.CONTRIBUTOR, "manager": Role.MANAGER}
# Who must learn nothing about collection A: each for a different reason.
OUTSIDERS = ["wall_on_user", "wall_on_group", "revoked", "no_grant", "auditor", "staff"]


@dataclass
class World:
    users: dict[str, User]
    matter_a: Collection
    matter_b: Collection
    document: Document
    deleted_id: int
    conversation: Conversation
    answer: Answer


def _world() -> World:
    """Collection A holds a real (copied) PDF; B is readable by the walled users, so a wall is shown to be
    specific to A and not a broken account."""
    make = {name: make_user(name) for name in [*READERS, *OUTSIDERS, "b_owner"]}
    make["staff"].is_staff = make["staff"].is_superuser = True
    make["staff"].save()
    make["auditor"].groups.add(Group.objects.get(name=AUDITORS_GROUP))
    manager = Actor(make["manager"])
    matter_a = collection_create(name="Matter A", actor=manager)
    matter_b = collection_create(name="Matter B", actor=Actor(make["b_owner"]))
    for name, role in READERS.items():
        if role != Role.MANAGER:
            grant_set(collection=matter_a, role=role, user=make[name], actor=manager)
    litigation, screened = Group.objects.create(name="Litigation"), Group.objects.create(name="Screened")
    make["wall_on_user"].groups.add(litigation)
    make["wall_on_group"].groups.add(litigation, screened)
    for collection in (matter_a, matter_b):
        grant_set(collection=collection, role=Role.CONTRIBUTOR, group=litigation, actor=manager)
    wall_set(collection=matter_a, user=make["wall_on_user"], actor=manager)
    wall_set(collection=matter_a, group=screened, actor=manager)
    revoked = grant_set(collection=matter_a, role=Role.MANAGER, user=make["revoked"], actor=manager)
    grant_revoke(grant=revoked, actor=manager)

    Path(settings.MEDIA_ROOT).mkdir(parents=True, exist_ok=True)
    document = Document.objects.create(
        collection=matter_a, title="Web hosting agreement", original_name="hosting.pdf",
        stored_name="matrix-hosting.pdf", sha256="ee" * 32, size_bytes=cuad(WEB_HOSTING).stat().st_size,
        page_count=1, status=DocumentStatus.READY, progress=100)
    shutil.copy(cuad(WEB_HOSTING), Path(settings.MEDIA_ROOT) / document.stored_name)
    chunk = Chunk.objects.create(document=document, ordinal=0, page=1, char_start=0, char_end=20,
                                 text="web hosting services", embedding=b"")
    gone = Document.objects.create(collection=matter_a, title="Erased", original_name="erased.pdf",
                                   stored_name="matrix-erased.pdf", sha256="ff" * 32, size_bytes=1,
                                   page_count=1, status=DocumentStatus.READY)
    deleted_id = gone.pk
    document_delete(document=gone, actor=manager)

    conversation = Conversation.objects.create(owner=make["viewer"], title="Hosting terms")
    conversation.collections.add(matter_a)
    question = Question.objects.create(conversation=conversation, asked_by=make["viewer"], text="Term?")
    # Stored as answers were before links were built when shown: the old "url" is ignored.
    url = f"/documents/{document.pk}/?page=1&chunk={chunk.pk}"
    answer = Answer.objects.create(question=question, status=AnswerStatus.DONE, text="Five years [1].",
                                   sources=[{"number": 1, "chunk_id": chunk.pk, "document_id": document.pk,
                                             "title": document.title, "page": 1, "nearest": False, "url": url}])
    Citation.objects.create(answer=answer, number=1, chunk=chunk, document=document, page=1)
    return World(make, matter_a, matter_b, document, deleted_id, conversation, answer)


@pytest.fixture
def world(db) -> Iterator[World]:
    built = _world()
    yield built
    shutil.rmtree(Path(settings.MEDIA_ROOT), ignore_errors=True)
    shutil.rmtree(Path(settings.PAGE_CACHE_DIR), ignore_errors=True)


def _expected(who: str, need: Role) -> int:
    """200-ish when the role suffices, 403 when readable but too low, 404 when not readable at all."""
    if who not in READERS:
        return 404
    order = [Role.VIEWER, Role.CONTRIBUTOR, Role.MANAGER]
    return 200 if order.index(READERS[who]) >= order.index(need) else 403


def _ok(code: int, expected: int) -> bool:
    # Allowed writes answer with a redirect; what matters is that they are neither refused nor hidden.
    return code in (200, 302) if expected == 200 else code == expected


ALL_USERS = [*READERS, *OUTSIDERS]


@pytest.mark.parametrize("who", ALL_USERS)
def test_collection_routes(world: World, who: str) -> None:
    client, a = logged_in(world.users[who]), world.matter_a.pk
    library = client.get("/").content.decode()
    assert ("Matter A" in library) == (who in READERS)
    assert ("Matter B" in library) == (who in {"wall_on_user", "wall_on_group"})
    checks = {
        "collection page": (client.get(f"/collections/{a}/").status_code, _expected(who, Role.VIEWER)),
        "status json": (client.get(f"/collections/{a}/status.json").status_code, _expected(who, Role.VIEWER)),
        "upload": (client.post(f"/collections/{a}/upload/").status_code, _expected(who, Role.CONTRIBUTOR)),
    }
    assert {k: v for k, v in checks.items() if not _ok(*v)} == {}
    ask = client.get("/ask/").content.decode()
    assert ("Matter A" in ask) == (who in READERS)


@pytest.mark.parametrize("who", ALL_USERS)
def test_document_routes(world: World, who: str) -> None:
    client, d = logged_in(world.users[who]), world.document.pk
    checks = {
        "viewer": (client.get(f"/documents/{d}/").status_code, _expected(who, Role.VIEWER)),
        "page image": (client.get(f"/documents/{d}/pages/1.png").status_code, _expected(who, Role.VIEWER)),
        "download": (client.get(f"/documents/{d}/download/").status_code, _expected(who, Role.CONTRIBUTOR)),
        "retry": (client.post(f"/documents/{d}/retry/").status_code, _expected(who, Role.CONTRIBUTOR)),
        "delete form": (client.get(f"/documents/{d}/delete/").status_code, _expected(who, Role.MANAGER)),
    }
    assert {k: v for k, v in checks.items() if not _ok(*v)} == {}
    if who != "manager":
        assert client.post(f"/documents/{d}/delete/").status_code == _expected(who, Role.MANAGER)
        assert Document.objects.filter(pk=d).exists()
    else:
        assert client.post(f"/documents/{d}/delete/").status_code == 302
        assert not Document.objects.filter(pk=d).exists()


@pytest.mark.parametrize("who", ALL_USERS)
def test_a_deleted_document_is_gone_for_everyone(world: World, who: str) -> None:
    client, d = logged_in(world.users[who]), world.deleted_id
    codes = [client.get(f"/documents/{d}/").status_code, client.get(f"/documents/{d}/pages/1.png").status_code,
             client.get(f"/documents/{d}/download/").status_code, client.post(f"/documents/{d}/retry/").status_code,
             client.get(f"/documents/{d}/delete/").status_code]
    assert codes == [404] * 5


@pytest.mark.parametrize("who", [u for u in ALL_USERS if u != "viewer"])
def test_other_peoples_conversations_and_answers_are_invisible(world: World, who: str) -> None:
    client = logged_in(world.users[who])
    c, ans = world.conversation.pk, world.answer.pk
    assert client.get(f"/ask/{c}/").status_code == 404
    assert client.post(f"/ask/{c}/questions/", {"question": "And the fee?"}).status_code == 404
    assert client.get(f"/answers/{ans}/stream/").status_code == 404
    assert Question.objects.filter(conversation_id=c).count() == 1


def test_a_revoked_grant_bites_on_the_next_request_and_hides_citations(world: World) -> None:
    viewer = world.users["viewer"]
    client, d = logged_in(viewer), world.document.pk
    link = f"/documents/{d}/?page=1"
    assert client.get(f"/documents/{d}/").status_code == 200
    page = client.get(f"/ask/{world.conversation.pk}/").content.decode()
    assert link in page and world.document.title in page

    grant_revoke(grant=Grant.objects.get(collection=world.matter_a, user=viewer), actor=Actor(world.users["manager"]))

    assert client.get(f"/documents/{d}/").status_code == 404
    assert client.get(f"/collections/{world.matter_a.pk}/").status_code == 404
    page = client.get(f"/ask/{world.conversation.pk}/").content.decode()
    assert link not in page and world.document.title not in page
    assert "1 source(s) hidden" in page


def test_a_wall_added_later_overrides_the_grant_at_once(world: World) -> None:
    contributor = world.users["contributor"]
    client = logged_in(contributor)
    assert client.get(f"/documents/{world.document.pk}/download/").status_code == 200
    wall_set(collection=world.matter_a, user=contributor, actor=Actor(world.users["manager"]))
    assert client.get(f"/documents/{world.document.pk}/download/").status_code == 404
    assert "Matter A" not in client.get("/").content.decode()


def test_inactive_accounts_read_nothing(world: World) -> None:
    manager = world.users["manager"]
    client = logged_in(manager)
    manager.is_active = False
    manager.save()
    assert client.get(f"/documents/{world.document.pk}/").status_code in (302, 404)


# --- Retrieval and the answer path, on really ingested chunks ---------------------------------------------

@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_retrieval_and_answers_never_reach_past_the_grants(services: None) -> None:
    world = _world()
    ingested = ingest(world.matter_a, cuad(WEB_HOSTING), actor=Actor(world.users["contributor"]))
    query = "web hosting services fees and term of the agreement"

    for who in READERS:
        hits = chunks_retrieve(user=world.users[who], query=query)
        assert ingested.pk in {h.document_id for h in hits}, who
        assert {h.collection_id for h in hits} == {world.matter_a.pk}, who
    for who in OUTSIDERS:
        # Naming the collection outright is a wish, not a grant.
        assert chunks_retrieve(user=world.users[who], query=query, collection_ids=[world.matter_a.pk]) == [], who
    viewer = world.users["viewer"]
    assert chunks_retrieve(user=viewer, query=query, collection_ids=[world.matter_b.pk]) == []

    # The answer worker: one ASK and one ANSWER event, and what it retrieved is what the asker may read.
    client = logged_in(viewer)
    before = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    response = client.post("/ask/", {"question": "What is the term of the web hosting agreement?",
                                     "collections": [str(world.matter_a.pk)]})
    assert response.status_code == 302
    answer = Answer.objects.filter(question__asked_by=viewer).order_by("-id").first()
    assert answer is not None
    wait_until(lambda: Answer.objects.get(pk=answer.pk).status in {AnswerStatus.DONE, AnswerStatus.ABSTAINED,
                                                                   AnswerStatus.FAILED}, what="the answer")
    events = list(AuditEvent.objects.filter(id__gt=before).exclude(action=Action.LOGIN).order_by("id"))
    assert [e.action for e in events] == [Action.ASK, Action.ANSWER], [e.action for e in events]
    retrieved = set(events[0].details["retrieved"])
    assert retrieved and set(Chunk.objects.filter(id__in=retrieved).values_list("document__collection_id",
                                                                                 flat=True)) == {world.matter_a.pk}

    walled = logged_in(world.users["wall_on_group"])
    walled.post("/ask/", {"question": "What is the term of the web hosting agreement?",
                          "collections": [str(world.matter_a.pk)]})
    forged = Answer.objects.filter(question__asked_by=world.users["wall_on_group"]).first()
    if forged is not None:  # the view may refuse outright; if it queued, the worker must find nothing
        wait_until(lambda: Answer.objects.get(pk=forged.pk).status != AnswerStatus.PENDING
                   and Answer.objects.get(pk=forged.pk).status != AnswerStatus.STREAMING, what="the answer")
        assert not any(s.get("document_id") == ingested.pk for s in Answer.objects.get(pk=forged.pk).sources)

    # After revocation the stream replays the finished answer without the sources the asker lost.
    grant_revoke(grant=Grant.objects.get(collection=world.matter_a, user=viewer), actor=Actor(world.users["manager"]))
    stream = client.get(f"/answers/{answer.pk}/stream/")
    body = b"".join(stream.streaming_content).decode()  # type: ignore[attr-defined]
    sources = [json.loads(line[len("data: "):]) for block in body.split("\n\n") if "event: sources" in block
               for line in block.split("\n") if line.startswith("data: ")]
    assert sources and all(item == [] for item in sources), body[:500]
    assert f"/documents/{ingested.pk}/" not in body
    # The answer's text may quote what the asker lost: it is withheld too, on the stream and on the page.
    done = [json.loads(line[len("data: "):]) for block in body.split("\n\n") if "event: done" in block
            for line in block.split("\n") if line.startswith("data: ")]
    tokens = [line[len("data: "):] for block in body.split("\n\n") if "event: token" in block
              for line in block.split("\n") if line.startswith("data: ")]
    assert done and done[-1]["text"] == "" and done[-1]["withheld"] is True, body[:500]
    assert not "".join(tokens).strip()
    page = client.get(f"/ask/{answer.question.conversation_id}/").content.decode()
    assert "This answer is hidden" in page
    assert chunks_retrieve(user=viewer, query=query) == []
