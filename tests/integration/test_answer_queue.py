"""Back-pressure on questions: an accepted question learns its place in the queue; past DOCS_ANSWER_QUEUE_MAX, or
when the answers ahead would take longer than DOCS_ANSWER_WAIT_TARGET_S at the pace answers have lately been
written, the next is refused with "busy, try again" (429, Retry-After), and an answer no worker took in time is
refused the same way by the reconciler. Every question is answered or refused, none waits without bound."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from docs_app.models import Answer, AnswerStatus, Collection, Conversation, Grant, Question, Role
from docs_app.services.reconcile import reconcile
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, cuad
from tests.harness import ask, ingest, logged_in, make_user, stream_events, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def answer_worker_paused(services: None) -> Iterator[Callable[[], None]]:
    """The suite's worker stops taking questions (as if every answer worker were busy); the fixture's value
    makes it take them again (so does the teardown)."""
    from workers.celery import app

    suite = [name for reply in app.control.ping(timeout=1.0) for name in reply if name.startswith("suite@")]
    app.control.cancel_consumer("answer", destination=suite, reply=True)

    def resume() -> None:
        app.control.add_consumer("answer", destination=suite, reply=True)

    yield resume
    resume()


@override_settings(ANSWER_QUEUE_MAX=2)
def test_questions_past_the_queue_limit_are_refused_busy_and_waiting_ones_learn_their_place(
        answer_worker_paused: Callable[[], None]) -> None:
    user = make_user("ivy")
    collection = Collection.objects.create(name="Matter queue")
    Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    ingest(collection, cuad(JOINT_VENTURE))
    client = logged_in(user)

    first, second = ask(client, JOINT_VENTURE_QUESTION), ask(client, "Who are the parties to the joint venture?")
    assert (first["queue_position"], second["queue_position"]) == (1, 2)
    with override_settings(ANSWER_STREAM_MAX_S=3):
        events = stream_events(client, second["stream_url"], queued=True)
    assert events[0].event == "queued" and json.loads(events[0].data) == {"position": 2, "queue_down": False}

    refused = client.post(reverse("ask"), {"question": "When does it end?"}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 429 and refused["Retry-After"]
    assert refused.json()["error"] == "busy" and "Busy, try again" in refused.json()["message"]
    assert refused.json()["waiting"] == 2
    page = client.post(reverse("ask"), {"question": "When does it end?"})
    assert page.status_code == 429 and "Busy, try again" in page.content.decode()
    assert Answer.objects.count() == 2  # nothing recorded for the refused questions

    # No answer worker took them within ANSWER_WAIT_MAX_S: the reconciler refuses them, the slots come free.
    with override_settings(ANSWER_WAIT_MAX_S=0):
        assert reconcile().answers_refused == 2
    for answer_id in (first["answer_id"], second["answer_id"]):
        answer = Answer.objects.get(pk=answer_id)
        assert answer.status == AnswerStatus.FAILED and "Busy, try again" in answer.error
    last = stream_events(client, first["stream_url"])[-1]
    assert last.event == "error" and "Busy, try again" in json.loads(last.data)["message"]

    accepted = ask(client, JOINT_VENTURE_QUESTION)
    answer_worker_paused()
    wait_until(lambda: Answer.objects.get(pk=accepted["answer_id"]).status in {AnswerStatus.DONE,
                                                                               AnswerStatus.ABSTAINED},
               timeout_s=180, what="the accepted question to be answered")


@override_settings(ANSWER_WAIT_TARGET_S=300)
def test_a_question_that_would_wait_longer_than_the_target_is_refused_busy_with_the_estimate() -> None:
    user = make_user("jon")
    client = logged_in(user)
    conversation = Conversation.objects.create(owner=user, title="earlier")
    now = timezone.now()
    # Lately each answer took its worker 200 s (a crowded CPU box), and one question waits already.
    for n, status in enumerate([AnswerStatus.DONE] * 3 + [AnswerStatus.PENDING]):
        question = Question.objects.create(conversation=conversation, asked_by=user, text=f"q{n}")
        Answer.objects.create(question=question, status=status,
                              **({"started_at": now - timedelta(seconds=200), "finished_at": now}
                                 if status == AnswerStatus.DONE else {}))

    refused = client.post(reverse("ask"), {"question": "When does it end?"}, HTTP_ACCEPT="application/json")
    assert refused.status_code == 429, refused.content
    body = refused.json()
    assert body["waiting"] == 1 and body["wait_estimate_s"] == 400  # (1 ahead + this one) x 200 s, one worker
    assert "Busy, try again" in body["message"] and "about 7 minutes" in body["message"]
    assert Answer.objects.count() == 4


def test_a_reconciler_lock_left_by_a_dead_pass_is_freed_not_waited_out(redis_server: str) -> None:
    """A pass that died with Redis (killed, then restarted from its append-only file) could not release its lock;
    every later pass used to skip for the rest of its 15 minutes. Held by this process or a gone process of this
    host, it is stale; held by a live process, it is respected."""
    import os

    from django.conf import settings

    from docs_app.services.reconcile import LOCK_KEY
    from docs_app.services.streams import redis_client

    for holder in (f"{settings.HOST_ID}:{os.getpid()}:old", f"{settings.HOST_ID}:999999999:old"):
        redis_client().set(LOCK_KEY, holder, ex=900)
        assert reconcile().skipped != "another reconciler is in a pass", holder
        assert redis_client().get(LOCK_KEY) is None
    redis_client().set(LOCK_KEY, f"{settings.HOST_ID}:1:live", ex=900)  # pid 1 lives
    try:
        assert reconcile().skipped == "another reconciler is in a pass"
    finally:
        redis_client().delete(LOCK_KEY)
