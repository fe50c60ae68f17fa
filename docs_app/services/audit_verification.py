"""Verifying the audit chain at a firm's size: incrementally for the audit page, in bounded memory for
`verify_audit`.

Re-verifying the whole chain on every load of the audit page cost about 16 s per million events, and every page
view in the app adds an event. So the database remembers what was verified (one AuditVerification row):

- the head: the newest event whose whole chain back to the first event has been verified, with its hash. Each
  load of the page first checks that this event still holds that hash (a chain rewritten from scratch changes
  it), then verifies the events added since, link by link, and moves the head;
- a sweep: old events are re-verified again and again in passes from the first event to the head, a slice on
  every load, so a row altered after it was first verified is still found (on a small log every load makes a
  whole pass; on a million events a pass takes a few hundred loads). `full_at` is when the last complete pass
  began: every event older than that head had been verified again since.

Each load spends about `budget_s` on this (the clock is read every few dozen events), so the page answers at once
however long the log; `verify_audit`
walks the whole chain in batches (keyset pages of ids, never the whole table in memory and never one long read
transaction) and records a complete pass. The remembered state lives in the database the chain protects, so it
is evidence of work done, not a trust anchor: an attacker who can rewrite the chain can rewrite it too, which is
what the keyed hashes and the heads anchored outside the database are for. The page checks the newest anchor on
every load (it stands for all older ones, see audit_anchors_problem); `verify_audit` checks every anchor.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from docs_app.models import AuditEvent, AuditVerification
from docs_app.services.audit import (
    CHAIN_VERSION,
    GENESIS_HASH,
    UNKEYED_HEAD,
    AuditKeyMissing,
    audit_anchors_problem,
    event_link_problem,
)

_BATCH = 500  # events per query
_AT_LEAST = 50  # events verified between looks at the clock: the least a walk with a deadline does


@dataclass(frozen=True)
class ChainStatus:
    """What the audit page says about the chain."""

    ok: bool
    checked: int  # events from the first up to the verified head
    head_id: int
    pending: int = 0  # events newer than the head, not yet verified (the budget ran out)
    first_broken_id: int | None = None
    problem: str = ""
    full_at: datetime | None = None  # start of the last complete pass over the chain (page sweep or command)
    sweep_done: int = 0  # events re-verified so far by the current pass
    verified_now: int = 0  # events this call verified
    head_hash: str = ""

    @property
    def sweep_percent(self) -> int:
        return min(100, 100 * self.sweep_done // self.checked) if self.checked else 100


@dataclass
class _Walk:
    """A run of consecutive events verified onwards from an event with `prev_hash` and chain version
    `prev_version`: where it stopped and whether it held."""

    last_id: int
    prev_hash: str
    prev_version: int
    count: int = 0
    broken_id: int | None = None
    problem: str = ""
    finished: bool = False  # reached the end of what it was asked to walk


def _events_after(after_id: int, *, upto_id: int | None = None) -> Iterator[list[AuditEvent]]:
    """Events with id > after_id (and <= upto_id), in id order, a batch at a time: each batch is its own short
    query, so memory stays bounded and no read transaction spans the walk."""
    while True:
        rows = AuditEvent.objects.filter(id__gt=after_id).order_by("id")
        if upto_id is not None:
            rows = rows.filter(id__lte=upto_id)
        batch = list(rows[:_BATCH])
        if not batch:
            return
        yield batch
        after_id = batch[-1].pk


def _walk(*, after_id: int, prev_hash: str, prev_version: int, upto_id: int | None = None,
          deadline: float | None = None) -> _Walk:
    """Verify the events after `after_id`, each against the one before (docs_app.services.audit
    .event_link_problem: the link, the chain version, the keyed hash). Stops at the first broken link, at
    `upto_id`, or at the deadline."""
    walk = _Walk(last_id=after_id, prev_hash=prev_hash, prev_version=prev_version)
    for batch in _events_after(after_id, upto_id=upto_id):
        for event in batch:
            problem = event_link_problem(event, prev_hash=walk.prev_hash, prev_version=walk.prev_version)
            if problem:
                walk.broken_id, walk.problem = event.pk, problem
                return walk
            walk.last_id, walk.prev_hash, walk.prev_version = event.pk, event.hash, event.chain_version
            walk.count += 1
            if deadline is not None and walk.count % _AT_LEAST == 0 and time.monotonic() >= deadline:
                return walk
    walk.finished = True
    return walk


def _anchors(*, latest_only: bool) -> str:
    try:
        return audit_anchors_problem(latest_only=latest_only)
    except AuditKeyMissing as exc:
        return str(exc)


def audit_verify_incremental(*, budget_s: float = 0.1) -> ChainStatus:
    """For the audit page: check the remembered head still holds, verify what was added since, continue the
    sweep over old events, all within about `budget_s`, and check the newest anchor; remember the progress."""
    deadline = time.monotonic() + budget_s
    state = AuditVerification.objects.filter(pk=1).first() or AuditVerification(pk=1)
    if state.head_id:
        stored = AuditEvent.objects.filter(pk=state.head_id).values_list("hash", flat=True).first()
        if stored != state.head_hash:
            return ChainStatus(False, state.head_count, state.head_id, first_broken_id=state.head_id,
                               problem="the event verified last is missing or changed: the chain was rewritten",
                               full_at=state.full_at)
    new = _walk(after_id=state.head_id, prev_hash=state.head_hash, prev_version=state.head_version,
                deadline=deadline)
    if new.broken_id is not None:
        return _broken(state, new)
    state.head_id, state.head_hash, state.head_version = new.last_id, new.prev_hash, new.prev_version
    state.head_count += new.count
    verified = new.count
    if new.finished:  # the sweep moves by at least _AT_LEAST events per load, so it ends even on a loaded machine
        if not state.sweep_id:
            state.sweep_started_at = timezone.now()
        sweep = _walk(after_id=state.sweep_id, prev_hash=state.sweep_hash, prev_version=state.sweep_version,
                      upto_id=state.head_id, deadline=deadline)
        if sweep.broken_id is not None:
            return _broken(state, sweep)
        verified += sweep.count
        state.sweep_count += sweep.count
        if sweep.finished:  # a whole pass: every event up to the head verified again since the pass began
            state.full_at = state.sweep_started_at
            state.sweep_id, state.sweep_hash, state.sweep_version, state.sweep_count = 0, GENESIS_HASH, 1, 0
        else:
            state.sweep_id, state.sweep_hash, state.sweep_version = sweep.last_id, sweep.prev_hash, sweep.prev_version
    state.save()
    problem = UNKEYED_HEAD if new.finished and state.head_count and state.head_version != CHAIN_VERSION else ""
    problem = problem or _anchors(latest_only=True)
    if problem:
        return ChainStatus(False, state.head_count, state.head_id, problem=problem, full_at=state.full_at,
                           sweep_done=state.sweep_count)
    pending = 0 if new.finished else AuditEvent.objects.filter(pk__gt=state.head_id).count()
    return ChainStatus(True, state.head_count, state.head_id, pending=pending, full_at=state.full_at,
                       sweep_done=state.sweep_count, verified_now=verified)


def _broken(state: AuditVerification, walk: _Walk) -> ChainStatus:
    # Nothing is remembered past a break: every load finds it again, and the page keeps saying so.
    return ChainStatus(False, state.head_count, state.head_id, first_broken_id=walk.broken_id, problem=walk.problem,
                       full_at=state.full_at, sweep_done=state.sweep_count)


def audit_verify_full() -> ChainStatus:
    """For `verify_audit`: the whole chain from the first event, in bounded memory, then every anchor. On
    success the head and the time of this complete pass are remembered (the page's sweep starts over)."""
    started = timezone.now()
    walk = _walk(after_id=0, prev_hash=GENESIS_HASH, prev_version=1)
    if walk.broken_id is not None:
        return ChainStatus(False, walk.count, walk.last_id, first_broken_id=walk.broken_id, problem=walk.problem)
    problem = UNKEYED_HEAD if walk.count and walk.prev_version != CHAIN_VERSION else _anchors(latest_only=False)
    if problem:
        return ChainStatus(False, walk.count, walk.last_id, problem=problem)
    with transaction.atomic():
        state = AuditVerification.objects.select_for_update().filter(pk=1).first() or AuditVerification(pk=1)
        state.head_id, state.head_hash, state.head_version = walk.last_id, walk.prev_hash, walk.prev_version
        state.head_count, state.full_at = walk.count, started
        state.sweep_id, state.sweep_hash, state.sweep_version = 0, GENESIS_HASH, 1
        state.sweep_count, state.sweep_started_at = 0, None
        state.save()
    return ChainStatus(True, walk.count, walk.last_id, full_at=started, verified_now=walk.count,
                       head_hash=walk.prev_hash)
