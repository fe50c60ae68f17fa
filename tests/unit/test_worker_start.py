"""A worker's start-up reconciler pass on a database it cannot read yet says so in one line, without a traceback:
a benchmark's or an operator's worker started before `migrate` is not an error to page anyone about."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError

from workers import tasks


def test_a_database_without_tables_at_worker_start_is_one_warning_line(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def no_tables() -> None:
        raise OperationalError("no such table: docs_app_document")

    monkeypatch.setattr(tasks, "reconcile", no_tables)
    with caplog.at_level(logging.INFO, logger=tasks.log.name):
        tasks._reconcile_at_start()
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)]
    assert "no such table: docs_app_document" in caplog.text


def test_any_other_failure_of_that_pass_keeps_its_traceback(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(tasks, "reconcile", broken)
    tasks._reconcile_at_start()
    assert [r.levelno for r in caplog.records] == [logging.ERROR] and caplog.records[0].exc_info is not None
