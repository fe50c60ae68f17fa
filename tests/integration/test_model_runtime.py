"""The answer model on any machine: a llama.cpp backend that dies with SIGILL is passed over for the next best
one, a model that cannot run at all fails answers with its reason, and an answer whose worker dies twice ends
FAILED while the next question is answered. Real llama.cpp, real child processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse

from docs_app import registry
from docs_app.adapters import llm_runtime
from docs_app.adapters.llm import model_path_from_settings
from docs_app.models import Answer, AnswerStatus, Collection, Conversation, Grant, Question, Role
from docs_app.services import answering
from docs_app.services.model_status import MODEL_STATUS_KEY, answer_runtime_prepare
from docs_app.services.streams import lease_holder_pid, redis_client, stream_read
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, cuad
from tests.harness import ask, ingest, logged_in, make_user, stream_events, wait_until

ON_TOPIC = JOINT_VENTURE_QUESTION

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# A CPU backend as a faulty build would be: it claims the best score and executes an instruction the CPU
# refuses (ud2 raises SIGILL, as AMX's tilezero does where the hypervisor never enabled AMX).
_TRAP_BACKEND = r"""
int ggml_backend_score(void) { return 1 << 30; }
void *ggml_backend_init(void) { __builtin_trap(); return 0; }
"""


def _trap_library(directory: Path) -> Path:
    source = directory / "trap.c"
    source.write_text(_TRAP_BACKEND, encoding="utf-8")
    library = directory / f"{llm_runtime.CPU_VARIANT_PREFIX}trapamx.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-o", str(library), str(source)], check=True)
    return library


@pytest.fixture
def fresh_runtime() -> Iterator[None]:
    """Each test proves the runtime anew in this process, and leaves the process as it found it."""
    saved = (llm_runtime._proven, os.environ.get(llm_runtime.BACKENDS_ENV))
    llm_runtime._proven = None
    os.environ.pop(llm_runtime.BACKENDS_ENV, None)
    yield
    llm_runtime._proven = saved[0]
    if saved[1] is None:
        os.environ.pop(llm_runtime.BACKENDS_ENV, None)
    else:
        os.environ[llm_runtime.BACKENDS_ENV] = saved[1]
    registry.language_model.cache_clear()
    answering._model = None


def test_a_backend_killed_by_sigill_is_passed_over_and_the_choice_is_remembered(tmp_path: Path) -> None:
    real = llm_runtime.cpu_variants(llm_runtime.backend_dir_default())
    assert real, "llama-cpp-python was built without loadable CPU variants (scripts/build-llama.sh)"
    backends = tmp_path / "backends"
    backends.mkdir()
    for variant in real:
        (backends / variant.name).symlink_to(variant)
    _trap_library(backends)
    model = model_path_from_settings(settings)
    cache = tmp_path / "runtime.json"

    choice = llm_runtime.runtime_choose(model_path=model, backend_dir=backends, gpu_layers=0, cache_path=cache,
                                        timeout_s=120)

    assert choice.ok, choice.failure_line()
    assert choice.tried[0].variant == "trapamx" and not choice.tried[0].ok
    assert "SIGILL" in choice.tried[0].detail
    assert choice.variant != "trapamx" and choice.tried[-1].ok
    # Next start: the remembered variant is proven by one child, the faulty one is not tried again.
    again = llm_runtime.runtime_choose(model_path=model, backend_dir=backends, gpu_layers=0, cache_path=cache,
                                       timeout_s=120)
    assert again.ok and again.variant == choice.variant and len(again.tried) == 1


def test_a_model_that_cannot_run_here_fails_answers_with_the_reason(services: None, tmp_path: Path,
                                                                   fresh_runtime: None) -> None:
    only_faulty = tmp_path / "faulty"
    only_faulty.mkdir()
    _trap_library(only_faulty)
    user = make_user("gina")
    collection = Collection.objects.create(name="Matter no model")
    Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    ingest(collection, cuad(JOINT_VENTURE))
    client = logged_in(user)

    with override_settings(LLM_BACKEND_DIR=str(only_faulty), LLM_RUNTIME_CACHE=tmp_path / "runtime.json"):
        choice = answer_runtime_prepare()
        assert not choice.ok and "SIGILL" in choice.failure_line()
        status = json.loads(redis_client().get(MODEL_STATUS_KEY) or "{}")
        assert status["state"] == "failed" and "SIGILL" in status["reason"]

        # Rows as the web side writes them, but not queued: this process plays the answer worker that cannot
        # run the model (the suite's worker can).
        conversation = Conversation.objects.create(owner=user, title="t")
        conversation.collections.set([collection])
        question = Question.objects.create(conversation=conversation, asked_by=user, text=ON_TOPIC)
        answer = Answer.objects.create(question=question)
        answering.answer_generate(answer_id=answer.pk)

    answer.refresh_from_db()
    assert answer.status == AnswerStatus.FAILED
    assert "cannot run on this machine" in answer.error
    assert answer.sources and all(s["nearest"] for s in answer.sources)  # the passages found, not as evidence
    events = stream_events(client, reverse("answer_stream", args=[answer.pk]))
    assert events[-1].event == "error" and "cannot run" in json.loads(events[-1].data)["message"]
    assert "cannot run on this machine" in client.get(reverse("conversation", args=[conversation.pk])).content.decode()

    client.force_login(make_user("root", is_staff=True))
    page = client.get(reverse("status")).content.decode()
    assert 'id="model-state" class="bad"' in page and "SIGILL" in page


def test_ensure_model_reports_the_backend_it_proved(capsys: pytest.CaptureFixture[str], fresh_runtime: None,
                                                    tmp_path: Path) -> None:
    with override_settings(LLM_RUNTIME_CACHE=tmp_path / "runtime.json"):
        call_command("ensure_model", "--check")
    out = capsys.readouterr().out
    assert "self-test" in out and "answer model runs on the llama.cpp" in out


def test_an_answer_whose_worker_dies_twice_fails_with_its_reason_and_the_next_is_answered(services: None) -> None:
    user = make_user("hank")
    collection = Collection.objects.create(name="Matter crashes")
    Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    ingest(collection, cuad(JOINT_VENTURE))
    client = logged_in(user)
    asked = ask(client, ON_TOPIC)
    answer_id = asked["answer_id"]

    killed: list[int] = []
    for _ in range(settings.ANSWER_MAX_RUNS):
        def generating() -> bool:
            # This run (the one after len(killed) restarts) has shown its sources: the model is now reading
            # the prompt or writing tokens.
            pid = lease_holder_pid(answer_id)
            kinds = [kind for _id, kind, _data in stream_read(answer_id=answer_id)]
            if pid is None or pid in killed or kinds.count("restart") != len(killed):
                return False
            this_run = kinds[len(kinds) - kinds[::-1].index("restart"):] if "restart" in kinds else kinds
            return "sources" in this_run
        wait_until(generating, timeout_s=120, every_s=0.05, what="a run of the answer to generate")
        pid = lease_holder_pid(answer_id)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # as a native crash in the model would end the worker process
        killed.append(pid)

    def failed() -> bool:
        return Answer.objects.get(pk=answer_id).status == AnswerStatus.FAILED

    try:
        wait_until(failed, timeout_s=120, what="the answer to fail after its second crash")
    except AssertionError as exc:
        state = Answer.objects.values("status", "attempts").get(pk=answer_id)
        kinds = [kind for _id, kind, _data in stream_read(answer_id=answer_id)]
        raise AssertionError(f"{exc}; killed {killed}; answer {state}; stream {kinds}") from None
    answer = Answer.objects.get(pk=answer_id)
    assert answer.attempts == settings.ANSWER_MAX_RUNS + 1
    assert "stopped 2 times" in answer.error
    events = stream_read(answer_id=answer_id)
    assert events[-1][1] == "error" and "stopped 2 times" in json.loads(events[-1][2])["message"]
    assert [kind for _id, kind, _data in events].count("restart") >= 1

    following = ask(client, "When does the MightyCell joint venture terminate?")
    wait_until(lambda: Answer.objects.get(pk=following["answer_id"]).status in {AnswerStatus.DONE,
                                                                                 AnswerStatus.ABSTAINED},
               timeout_s=120, what="the next question to be answered")
    page = client.get(asked["conversation_url"]).content.decode()
    assert "stopped 2 times" in page
