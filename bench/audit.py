"""The audit page and `verify_audit` at a firm's size.

    .venv/bin/python bench/audit.py --events 1000000

Fills a fresh database with --events audit events forming a valid chain (hashed by the app's own event_hash,
inserted in bulk), then in one run:

- the first version's page cost: the whole-chain verification it ran on every load (timed once);
- the audit page through Django's test client as an auditor (the real view, template, pagination and count):
  once with nothing verified yet (it answers after its time budget, the rest is left for later loads), then, after
  `verify_audit`, --loads loads each preceded by one new event (every page view in the app adds one), p50/p95;
  and the page with filters (user, action, date range);
- `manage.py verify_audit` in a child process: wall time and the child's peak resident memory (the walk reads
  keyset batches, so it stays flat at any size).

The last line is one JSON object with every figure and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_app.devservices import REPO, configure

ACTIONS = ["document.view", "document.page_view", "question.ask", "question.answer", "auth.login"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    configure(workdir)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    load_before = os.getloadavg()
    figures: dict[str, Any] = {"events": fill(args.events)}
    figures.update(measure(args, workdir))
    figures["load_average_before"] = [round(x, 2) for x in load_before]
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figures))


def fill(wanted: int) -> int:
    """Events in one valid chain, as audit_record writes them, inserted in bulk (a reused work directory keeps
    what it has)."""
    from django.db import connection, transaction

    from docs_app.models import AuditEvent
    from docs_app.services.audit import GENESIS_HASH, event_hash

    have = AuditEvent.objects.count()
    last = AuditEvent.objects.order_by("-id").values_list("hash", "created_at").first()
    prev, created = (last[0], last[1]) if last else (GENESIS_HASH, datetime(2020, 1, 1, tzinfo=UTC))
    started = time.perf_counter()
    fields = [f for f in AuditEvent._meta.concrete_fields if f.name != "id"]
    columns = ", ".join(f.column for f in fields)
    sql = f"INSERT INTO {AuditEvent._meta.db_table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"
    while have < wanted:
        rows = []
        for i in range(have, min(wanted, have + 20_000)):
            created += timedelta(seconds=30)
            event = AuditEvent(created_at=created, actor_name=f"user{i % 40}", action=ACTIONS[i % len(ACTIONS)],
                               target_type="document", target_id=str(i % 5000), collection_id_ref=i % 100,
                               document_id_ref=i % 5000, client_address="10.0.0.7", outcome="ok",
                               details={"page": i % 30}, prev_hash=prev)
            event.hash = event_hash(event)
            prev = event.hash
            rows.append([f.get_db_prep_save(getattr(event, f.attname), connection) for f in fields])
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(sql, rows)
        have += len(rows)
        print(f"  {have} events ({have / (time.perf_counter() - started):.0f}/s)", flush=True)
    return have


def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from django.contrib.auth.models import User
    from django.test import Client

    from docs_app.models import AuditVerification
    from docs_app.services.audit import Action, audit_record, audit_verify
    from docs_app.services.grants import roles_ensure

    figures: dict[str, Any] = {}
    start, start_cpu = time.perf_counter(), time.process_time()
    report = audit_verify()
    figures["first_version_page_verify_s"] = round(time.perf_counter() - start, 2)
    figures["first_version_page_verify_cpu_s"] = round(time.process_time() - start_cpu, 2)
    print(f"first version's per-load verification: {figures['first_version_page_verify_s']} s ({report.checked} "
          "events)", flush=True)

    auditor = User.objects.create_user(username=f"auditor-{time.time_ns()}")
    auditor.groups.add(roles_ensure())
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(auditor)
    AuditVerification.objects.all().delete()

    cpu: list[float] = []

    def load(url: str = "/audit/", **params: str) -> tuple[float, str]:
        # Wall time, and this process's CPU time (the view, SQLite and the template all run here): on a shared
        # machine the second says what the page costs whatever the neighbours do.
        begin, begin_cpu = time.perf_counter(), time.process_time()
        response = client.get(url, params)
        elapsed = (time.perf_counter() - begin) * 1000
        cpu.append((time.process_time() - begin_cpu) * 1000)
        assert response.status_code == 200, (url, response.status_code)
        return elapsed, response.content.decode()

    load("/")  # the first request of a process pays for imports and middleware: not the audit page's cost
    cold_ms, cold_page = load()
    figures["page_cold_ms"] = round(cold_ms, 1)
    figures["page_cold_says"] = _chain_line(cold_page)
    print(f"page, nothing verified before: {cold_ms:.0f} ms: {figures['page_cold_says']}", flush=True)

    begin = time.perf_counter()
    child = subprocess.run([sys.executable, "manage.py", "verify_audit"], cwd=REPO, env=dict(os.environ),
                           capture_output=True, text=True, check=False)
    figures["verify_audit_s"] = round(time.perf_counter() - begin, 2)
    figures["verify_audit_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)
    figures["verify_audit_says"] = child.stdout.strip().splitlines()[0] if child.stdout.strip() else child.stderr[-300:]
    print(f"verify_audit: {figures['verify_audit_s']} s, peak RSS {figures['verify_audit_peak_rss_mb']} MB: "
          f"{figures['verify_audit_says']}", flush=True)

    times = []
    page = ""
    cpu.clear()
    for i in range(args.loads):
        audit_record(action=Action.VIEW, actor_name="someone", target_type="document", target_id=i)
        elapsed, page = load()
        times.append(elapsed)
    figures["page_ms"] = _percentiles(times)
    figures["page_cpu_ms"] = _percentiles(cpu)
    figures["page_says"] = _chain_line(page)
    print(f"page after verify_audit, one new event per load: {figures['page_ms']} (CPU {figures['page_cpu_ms']}): "
          f"{figures['page_says']}", flush=True)

    filtered = {
        "user": {"user": "user7"},
        "action": {"action": "question.ask"},
        "dates": {"since": "2020-03-01", "until": "2020-03-07"},
        "user_action_page_50": {"user": "user7", "action": "document.view", "page": "50"},
    }
    figures["filtered_page_ms"] = {}
    for name, params in filtered.items():
        runs = [load(**params)[0] for _ in range(5)]
        figures["filtered_page_ms"][name] = round(statistics.median(runs), 1)
    print(f"filtered pages (median of 5): {figures['filtered_page_ms']}", flush=True)
    db = Path(os.environ["DOCS_DATABASE_URL"].removeprefix("sqlite:///"))
    figures["database_bytes"] = db.stat().st_size if db.exists() else None
    figures["work_directory"] = str(workdir)
    return figures


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "p95": round(statistics.quantiles(values, n=20)[18], 1)}


def _chain_line(page: str) -> str:
    start = page.find('class="chain chain-status')
    if start < 0:
        return "(no chain status)"
    text = re.sub(r"<[^>]+>", "", page[page.find(">", start) + 1: page.find("</p>", start)])
    return " ".join(text.split())[:300]


if __name__ == "__main__":
    main()
