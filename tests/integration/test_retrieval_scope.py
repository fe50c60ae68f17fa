"""Document-aware retrieval through the real stack (ingest worker, Chroma server, DB keyword indexes, MiniLM): a
question naming a document in any phrasing is answered from it; one naming none is not routed; a scope of
chosen documents is kept, by the service and by the ask page and its follow-ups."""

from __future__ import annotations

import pytest

from docs_app.models import Answer, Collection, Conversation, Grant, Role
from docs_app.selectors.retrieval import chunks_retrieve, names_absent_from_scope
from tests.data import JOINT_VENTURE, MAINTENANCE, SPONSORSHIP, WEB_HOSTING, cuad
from tests.harness import ingest, logged_in, make_user, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_document_named_in_any_phrasing_is_searched_and_a_scope_is_kept(services: None) -> None:
    user = make_user("paralegal")
    collection = Collection.objects.create(name="Deals")
    Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    venture, hosting, sponsorship = (ingest(collection, cuad(name))
                                     for name in (JOINT_VENTURE, WEB_HOSTING, SPONSORSHIP))

    for question in ("How long is the term of the MightyCell joint venture?",
                     "mightycell joint venture: how long is the term",
                     "In the Joint Venture Agreement, how long is the term?"):
        hits = chunks_retrieve(user=user, query=question, k=5)
        assert hits and {hit.document_id for hit in hits} == {venture.pk}, question

    # Named by a party, the hosting agreement; named by nothing, no document is singled out.
    assert chunks_retrieve(user=user, query="What fees does Horst Entertainment pay?", k=3)[0].document_id \
        == hosting.pk
    # A party misspelt by one letter, and nothing else naming the document: found by the name's first letters.
    misspelt = chunks_retrieve(user=user, query="How long is the term of the Migthycell deal?", k=5)
    assert misspelt and {hit.document_id for hit in misspelt} == {venture.pk}
    # Its file name pasted into the question names it, and is no name the documents lack (it is in no text).
    pasted = "What fees are paid under GALACTICOMMTECHNOLOGIESINC_11_07_1997-EX-10.46-WEB HOSTING AGREEMENT?"
    assert chunks_retrieve(user=user, query=pasted, k=3)[0].document_id == hosting.pk
    assert names_absent_from_scope(user=user, query="What fees does GALACTICOMMTECHNOLOGIESINC pay?") == []
    assert names_absent_from_scope(user=user, query="What fees does Zorblax pay?") == ["Zorblax"]
    unnamed = chunks_retrieve(user=user, query="How can this agreement be terminated?", k=5)
    assert len({hit.document_id for hit in unnamed}) >= 2

    # A chosen scope wins over whatever the question names; a follow-up keeps the documents named before it.
    scoped = chunks_retrieve(user=user, query="How long is the MightyCell joint venture?",
                             document_ids=[sponsorship.pk])
    assert scoped and {hit.document_id for hit in scoped} == {sponsorship.pk}
    follow_up = chunks_retrieve(user=user, query="And when does it commence?", k=4,
                                previous="How long is the term of the MightyCell joint venture?")
    assert {hit.document_id for hit in follow_up} == {venture.pk}

    # Documents the user may not read are no scope at all.
    other = Collection.objects.create(name="Elsewhere")
    hidden = ingest(other, cuad(WEB_HOSTING))
    assert chunks_retrieve(user=user, query="web hosting fees", document_ids=[hidden.pk]) == []


def test_ask_this_document_keeps_its_scope_for_follow_ups(services: None) -> None:
    user = make_user("clerk")
    collection = Collection.objects.create(name="Matter")
    Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    venture, hosting = ingest(collection, cuad(JOINT_VENTURE)), ingest(collection, cuad(WEB_HOSTING))
    client = logged_in(user)

    page = client.get(f"/documents/{hosting.pk}/").content.decode()
    assert 'id="ask-document"' in page and "Web Hosting Agreement" in page and "Horst Entertainment" in page

    response = client.post("/ask/", {"question": "How long is the MightyCell joint venture?",
                                     "documents": [str(hosting.pk)]}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    conversation = Conversation.objects.get(owner=user)
    assert list(conversation.documents.values_list("id", flat=True)) == [hosting.pk]
    client.post(f"/ask/{conversation.pk}/questions/", {"question": "And who pays the fees?"},
                HTTP_ACCEPT="application/json")
    answers = Answer.objects.filter(question__conversation=conversation)
    wait_until(lambda: answers.count() == 2 and all(a.is_finished for a in answers.all()), timeout_s=600,
               what="both answers")
    assert {s["document_id"] for a in answers.all() for s in a.sources} == {hosting.pk}
    assert venture.pk not in {s["document_id"] for a in answers.all() for s in a.sources}
    shown = client.get(f"/ask/{conversation.pk}/").content.decode()
    assert 'id="conversation-scope"' in shown and "Asking about" in shown


def test_small_scopes_compare_stored_vectors_and_find_what_the_vector_store_finds(services: None) -> None:
    """Small scopes skip Chroma (DENSE_EXACT_MAX_PASSAGES): the stored vectors must rank as the vector store does,
    and a large scope must still go to the vector store."""
    from django.test import override_settings

    from docs_app import registry
    from docs_app.selectors.retrieval import DENSE_ONLY

    user = make_user("reader")
    collection = Collection.objects.create(name="Both ways")
    Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    for name in (JOINT_VENTURE, WEB_HOSTING, SPONSORSHIP):
        ingest(collection, cuad(name))
    store = registry.vector_store()
    questions = ("How long is the term of the joint venture?", "What fees are paid for web hosting?",
                 "Who may terminate the sponsorship and when?")
    asked: list[int] = []
    original = store.query
    store.query = lambda **kw: asked.append(1) or original(**kw)  # type: ignore[method-assign]
    try:
        with override_settings(DENSE_EXACT_MAX_PASSAGES=100_000):
            exact = [[h.chunk_id for h in chunks_retrieve(user=user, query=q, k=5, options=DENSE_ONLY)]
                     for q in questions]
        assert not asked
        with override_settings(DENSE_EXACT_MAX_PASSAGES=0):
            approximate = [[h.chunk_id for h in chunks_retrieve(user=user, query=q, k=5, options=DENSE_ONLY)]
                           for q in questions]
        assert len(asked) == len(questions)
    finally:
        store.query = original  # type: ignore[method-assign]
    assert all(exact) and exact == approximate


def test_a_wide_reader_whose_nearest_passages_are_unreadable_is_served_without_the_stores_filter(
        services: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader of a quarter of the documents asks about what only the others' matters discuss closely: the
    unfiltered search finds no readable neighbour, and the ranking is completed from the documents the keyword
    ranking found (exactly compared), not by the vector store's filtered search (~460 ms at 1M chunks)."""
    import numpy as np
    from django.test import override_settings

    from docs_app import registry
    from docs_app.models import Chunk
    from docs_app.selectors.retrieval import _scope_index

    user = make_user("associate")
    mine, theirs = Collection.objects.create(name="Mine"), Collection.objects.create(name="Theirs")
    Grant.objects.create(collection=mine, user=user, role=Role.VIEWER)
    hosting = ingest(mine, cuad(WEB_HOSTING))
    venture = ingest(theirs, cuad(JOINT_VENTURE))
    for name in (SPONSORSHIP, MAINTENANCE):
        ingest(theirs, cuad(name))
    # The question: a joint venture passage whose 12 nearest passages (what the unfiltered search asks for: 2
    # wanted x 1.5 / a readable share of 0.25) are all the others' matters'.
    rows = list(Chunk.objects.values_list("document_id", "embedding"))
    owners = np.array([document for document, _ in rows])
    vectors = np.stack([np.frombuffer(bytes(e), dtype=np.float32) for _, e in rows])
    nearest_others = [i for i in np.flatnonzero(owners == venture.pk)
                      if hosting.pk not in owners[np.argsort(-(vectors @ vectors[i]))[:12]]]
    assert nearest_others
    vector = vectors[nearest_others[0]]

    store = registry.vector_store()
    searches: list[object] = []
    unfiltered_or_filtered = store._search  # type: ignore[attr-defined]

    def counted(embedding: object, k: int, *, where: object) -> object:
        searches.append(where)
        return unfiltered_or_filtered(embedding, k, where=where)

    monkeypatch.setattr(store, "_search", counted)
    with override_settings(DENSE_EXACT_MAX_PASSAGES=0):  # as if the reader's scope were too large for it
        index = _scope_index(user=user, collection_ids=None, document_ids=None)
        assert index is not None
        near = index.keyword(["term", "agreement"], limit=5)
        assert near and set(index.chunk_documents(near).values()) == {hosting.pk}
        ranked = index.dense(vector, limit=2, near=near)
        without_near = index.dense(vector, limit=2)
    # With `near`: one unfiltered search, then the hosting agreement's stored vectors compared. Without: the
    # unfiltered search, then the store's filter. Both find the same passages.
    assert searches[0] is None and searches[1] is None and searches[2] is not None and len(searches) == 3
    exact = [chunk_id for chunk_id, _ in index._dense_exact(vector, limit=2, documents=[hosting.pk])]
    assert ranked == exact == without_near
