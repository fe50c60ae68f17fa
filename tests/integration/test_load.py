"""bench/load.py in miniature, as a test: a few people logging in, browsing, opening pages and asking while a bulk
ingestion runs, against the app as production runs it (gunicorn threads, two ingest processes and one answer
worker, all writing one SQLite file at once, the reconciler beside them). No "database is locked" reaches anyone
(nor any log), no response is a 5xx, no request times out, and every question ends answered or refused busy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.data import REPO, shared_data


@pytest.mark.timeout(900)
def test_people_browse_and_ask_while_a_bulk_ingestion_runs_without_a_5xx_or_a_locked_database(
        tmp_path: Path) -> None:
    # The bench chooses its own data directory and ports; the network guard's record stays the suite's.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("DOCS_") or key == "DOCS_NETGUARD_LOG"}
    done = subprocess.run(
        [sys.executable, "bench/load.py", "--users", "4", "--duration", "30", "--seed-docs", "1", "--bulk-docs", "3",
         "--answer-tokens", "8", "--drain-s", "300", "--pdfs", str(shared_data("legal", "cuad_pdf")),
         "--workdir", str(tmp_path / "load")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=880, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(figures)
    assert figures["users"] == 4 and figures["requests"] > 0
    assert figures["errors_5xx"] == 0 and figures["request_errors"] == 0, figures
    assert figures["db_locked"] == 0, figures
    assert figures["unanswered"] == 0 and figures["failed_answers"] == 0, figures
    assert figures["answered"] + figures["busy"] > 0
    assert {"ttft_p50_s", "ttft_p95_s", "queue_max"} <= figures.keys()
