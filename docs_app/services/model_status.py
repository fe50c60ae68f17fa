"""The models' state as the status page and `ensure_model` show it: for the answer model, which file, which
llama.cpp CPU backend was proven to run here, and whether the self-test passed; for the embedder, which
precision and device it proved at start and with how many threads.

Workers publish it to Redis (the web process loads no model); `answer_runtime_prepare` runs once when an
answer worker starts, before its pool processes take work; `embedder_prepare` in each pool process.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from docs_app import registry
from docs_app.adapters import llm_runtime
from docs_app.adapters.embeddings import WORKER_PROCESSES_ENV
from docs_app.adapters.llm import model_path_from_settings, runtime_prove_from_settings
from docs_app.pipeline.processes import process_alive
from docs_app.services.streams import redis_client

if TYPE_CHECKING:
    from docs_app.adapters.llm import LanguageModel

log = logging.getLogger(__name__)

MODEL_STATUS_KEY = "docs:llm:status"
# Refreshed by every answer; a worker that stopped long ago no longer claims a state.
MODEL_STATUS_TTL_S = 6 * 3600
# A hash: one field per worker process, "host:pid" (hosts may differ: a GPU host embeds in fp16, an old CPU in
# fp32; each process proves its own).
EMBEDDER_STATUS_KEY = "docs:embedder:status"
# The stand-in's file name: the status page and the ask page say when answers come from it.
STANDIN_NOTE = ("The installed answer model is the packaged stand-in (Gemma 3 270M, a base model): it proves the "
                "whole path runs but writes poor answers. Install the production model (README).")


def answer_runtime_prepare() -> llm_runtime.RuntimeChoice:
    """Prove that the model generates on this machine (in a child process) and say so: one log line, and
    the state on /status/. Never raises: a worker whose model cannot run still fails each answer cleanly."""
    try:
        path = model_path_from_settings(settings)
        choice = runtime_prove_from_settings(settings, model_path=path)
    except Exception as exc:  # the model file itself is missing or unreadable, or llama.cpp is not installed
        log.error("answer model self-test FAILED: %s", exc)
        _publish({"state": "failed", "reason": str(exc)[:500], "path": str(settings.LLM_MODEL_PATH)})
        return llm_runtime.RuntimeChoice(ok=False, variant="", backend_files=(), cpu_flags=llm_runtime.cpu_flags(),
                                         reason=str(exc)[:500])
    if choice.ok:
        log.info("answer model self-test passed on the llama.cpp %s CPU backend (%s)", choice.variant,
                 "; ".join(t.detail for t in choice.tried))
    else:
        log.error(choice.failure_line())
    _publish({"state": "ok" if choice.ok else "failed", "reason": choice.failure_line() if not choice.ok else "",
              "path": str(path), "name": path.name, "size_bytes": path.stat().st_size,
              "standin": not settings.LLM_MODEL_PATH, "runtime": choice.describe()})
    return choice


def model_loaded_publish(model: LanguageModel, *, loaded_at: str) -> None:
    _publish({**model.describe(), "state": "ok", "reason": "", "standin": not settings.LLM_MODEL_PATH,
              "pid": os.getpid(), "loaded_at": loaded_at})


def _publish(fields: dict[str, Any]) -> None:
    client = redis_client()
    try:
        current = json.loads(client.get(MODEL_STATUS_KEY) or "{}")
    except ValueError:
        current = {}
    status = {**current, **fields, "host": platform.node(), "refreshed_at": timezone.now().isoformat()}
    client.set(MODEL_STATUS_KEY, json.dumps(status), ex=MODEL_STATUS_TTL_S)


def embedder_threads_share(*, processes: int) -> None:
    """Called in a worker's main process before its pool forks: each pool process then sizes its embedding
    threads to its share of the cores (an operator's DOCS_WORKER_PROCESSES, e.g. for several workers on one
    host, wins)."""
    os.environ.setdefault(WORKER_PROCESSES_ENV, str(max(1, processes)))


def embedder_prepare() -> None:
    """Load the embedder when a worker process starts (it proves its precision then, see
    docs_app.adapters.embeddings) and publish how it runs for /status/. Never raises: a task that needs the
    embedder then fails with the reason."""
    try:
        fields = {"state": "ok", **registry.embedder().describe()}
    except Exception as exc:
        log.exception("the embedding model could not be loaded")
        fields = {"state": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]}
    host = platform.node()
    fields.update(host=host, pid=os.getpid(), refreshed_at=timezone.now().isoformat())
    client = redis_client()
    # Entries of this host's processes that are gone (a restart gives new pids) leave the page.
    for name in client.hkeys(EMBEDDER_STATUS_KEY):
        owner, _, pid = str(name).rpartition(":")
        if owner == host and pid.isdigit() and not process_alive(int(pid)):
            client.hdel(EMBEDDER_STATUS_KEY, name)
    client.hset(EMBEDDER_STATUS_KEY, f"{host}:{os.getpid()}", json.dumps(fields))
    client.expire(EMBEDDER_STATUS_KEY, MODEL_STATUS_TTL_S)
