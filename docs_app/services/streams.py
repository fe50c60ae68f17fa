"""One Redis Stream per answer carries its events from the answer worker to whichever web process relays them.

A stream (not pub/sub) because the browser reconnects: every entry has an id, Server-Sent Events hand that id
back as Last-Event-ID, and XREAD from it returns exactly what the client has not seen. The stream is deleted
shortly after the answer finishes (FINISHED_LINGER_S, so that a relay half-way through still reads the end from
Redis): the DB holds the finished answer, the stream only serves the minutes while it is being written.

Events: `sources` (JSON list of ids and places: never passage text or titles, which the web side loads from
the DB with an access check), `token` (text), `restart` (a redelivered task starts the answer over: clients
drop what they have shown), `done` (JSON: status, text, citations), `error` (JSON: message).

Redis writes every command to its append-only file, deletions included: what a stream held stays in that file
until Redis rewrites it. Erasing a document deletes the streams of the answers that drew on it, and the
erasure's compaction task rewrites the file (`redis_files_compact`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings

from docs_app.services.liveness import Beat, run_dead_here, run_identity, run_pid

log = logging.getLogger(__name__)

STREAM_TTL_S = 3600
FINISHED_LINGER_S = 30
# An entry id as Redis writes it; anything else from a client is ignored rather than passed to Redis.
_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")
TERMINAL_EVENTS = frozenset({"done", "error"})


# Longer than any blocking read here (the SSE relay blocks 15 s between keep-alives); redis-py's default of 5 s
# would cut a blocking XREAD short, while a dead server still shows within a minute.
SOCKET_TIMEOUT_S = 60


@functools.cache
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S,
                                socket_connect_timeout=5)


class AnswerBusy(Exception):
    """Another live run holds this answer's lease (a duplicate delivery, or a dead run's lease not yet lapsed)."""


class LeaseLost(Exception):
    """This run's lease was taken by another run (this one was presumed dead): it must stop writing at once."""


# Compare-and-act on the lease value, so a run never renews, steals or releases a lease that is not its own.
# Renewing a lease that is gone altogether (Redis restarted without its data) takes it again.
_RENEW = ("local held = redis.call('get', KEYS[1]) "
          "if held == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end "
          "if not held then redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) return 1 end return 0")
_STEAL = ("if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) "
          "return 1 end return 0")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def lease_key(answer_id: int) -> str:
    return f"docs:answer:{answer_id}:lease"


def lease_holder_pid(answer_id: int) -> int | None:
    """The process id of the run holding the answer's lease (for the status page and fault tests)."""
    value = redis_client().get(lease_key(answer_id))
    return run_pid(str(value)) if value else None


@dataclass
class AnswerLease:
    """A run's claim on an answer. A thread renews it every quarter of its length while the run's process lives
    (however long one model call takes); a run whose lease was taken over learns it from `check()`."""

    answer_id: int
    lost: threading.Event

    def check(self) -> None:
        if self.lost.is_set():
            raise LeaseLost(f"answer {self.answer_id} was taken over by another run")


@contextlib.contextmanager
def answer_lease(*, answer_id: int) -> Iterator[AnswerLease]:
    """One run per answer at a time: two runs writing one stream would interleave their tokens. Raises
    AnswerBusy when another live run holds it. A holder on this host whose process is gone is taken over at
    once; one on another host when its lease lapses (settings.ANSWER_LEASE_S after its last renewal)."""
    client = redis_client()
    key = lease_key(answer_id)
    length = settings.ANSWER_LEASE_S
    mine = run_identity()
    if not client.set(key, mine, nx=True, ex=length):
        holder = client.get(key)
        taken = holder is not None and run_dead_here(str(holder)) and client.eval(
            _STEAL, 1, key, str(holder), mine, length)
        if not taken and not client.set(key, mine, nx=True, ex=length):
            raise AnswerBusy(f"answer {answer_id} is being written by another run")

    def renew() -> bool:
        return bool(client.eval(_RENEW, 1, key, mine, length))

    def missed(exc: BaseException) -> None:
        log.warning("could not renew the lease of answer %s: %s", answer_id, exc)

    beat = Beat(beat=renew, every_s=max(1.0, length / 4), name=f"lease-{answer_id}", on_error=missed)
    beat.start()
    try:
        yield AnswerLease(answer_id=answer_id, lost=beat.lost)
    finally:
        beat.stop()
        with contextlib.suppress(redis.RedisError):
            client.eval(_RELEASE, 1, key, mine)


def answer_lease_live(*, answer_id: int) -> bool:
    """A run that is alive (or not yet known dead) holds the answer's lease."""
    holder = redis_client().get(lease_key(answer_id))
    return holder is not None and not run_dead_here(str(holder))


def stream_key(answer_id: int) -> str:
    return f"docs:answer:{answer_id}"


# A worker's write to a stream waits this long for a Redis that restarts (a patch window) before it fails.
PUBLISH_RETRY_S = 30


def stream_publish(*, answer_id: int, event: str, data: str) -> str:
    """Append one event; returns its entry id. Every append renews the expiry. Waits (with backoff, up to
    PUBLISH_RETRY_S) for a Redis that is restarting: an answer must not fail for a blip of its messenger."""
    key = stream_key(answer_id)
    deadline = time.monotonic() + PUBLISH_RETRY_S
    delay = 0.2
    while True:
        pipe = redis_client().pipeline(transaction=False)
        pipe.xadd(key, {"event": event, "data": data})
        pipe.expire(key, STREAM_TTL_S)
        try:
            entry_id, _ = pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("answer %s: Redis did not take the %s event (%s); trying again", answer_id, event, exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        return str(entry_id)


def stream_read(*, answer_id: int, after: str = "0-0", block_ms: int = 0,
                count: int = 500) -> list[tuple[str, str, str]]:
    """(entry id, event, data) entries after `after`, waiting up to block_ms for the first (0: no wait)."""
    after = after if _ENTRY_ID.fullmatch(after) else "0-0"
    found: Any = redis_client().xread({stream_key(answer_id): after}, count=count, block=block_ms or None)
    entries: list[tuple[str, str, str]] = []
    for _key, items in found or []:
        for entry_id, fields in items:
            entries.append((str(entry_id), str(fields.get("event", "")), str(fields.get("data", ""))))
    return entries


def stream_finish(*, answer_id: int) -> None:
    """The answer is in the DB now: the stream goes after a short linger."""
    redis_client().expire(stream_key(answer_id), FINISHED_LINGER_S)


def streams_delete(*, answer_ids: list[int]) -> None:
    if answer_ids:
        redis_client().delete(*[stream_key(answer_id) for answer_id in answer_ids])


def redis_files_compact() -> bool:
    """Rewrite Redis's append-only file from what Redis holds now, so deleted streams leave the disk too.
    False when Redis keeps no append-only file (nothing to do)."""
    client = redis_client()
    try:
        if client.config_get("appendonly").get("appendonly") != "yes":
            return False
    except redis.exceptions.ResponseError:  # CONFIG renamed away (a managed Redis): rewrite anyway
        pass
    try:
        client.bgrewriteaof()
    except redis.exceptions.ResponseError as exc:
        if "already in progress" not in str(exc):
            raise
        # A rewrite running now may have copied the streams before they were deleted: ask again later.
        raise RewriteBusy(str(exc)) from exc
    return True


class RewriteBusy(Exception):
    """Redis is rewriting its append-only file already; the caller's task retries."""


def stream_exists(*, answer_id: int) -> bool:
    return bool(redis_client().exists(stream_key(answer_id)))


def entry_id_valid(value: str) -> bool:
    return bool(_ENTRY_ID.fullmatch(value))
