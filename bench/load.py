"""N simulated people using the app over HTTP while a bulk ingestion runs: log in, browse the library and a
collection, open a document page and its page image, ask a question and follow the answer's stream to its end,
think, repeat. The app runs as in production (docs_app.devservices: Redis, the Chroma server, gunicorn with the
Procfile's gthread settings, two ingest processes, one answer worker, the reconciler) against one SQLite file.

    .venv/bin/python bench/load.py --users 20 --duration 180

A question refused with "busy, try again" (429) is counted as `busy`, not as an error; the person retries after
the Retry-After the server gave. When the load stops, the answers still in the queue are waited for (--drain-s),
so every question ends answered, refused or failed with a reason. The last line printed is one JSON object:
users, requests, errors_5xx, request_errors (timeouts, refused connections), ttft_p50_s / ttft_p95_s (from
sending the question to its first token, queueing included), queue_max (answers waiting or being written),
busy, answered, unanswered, page_p50_s / page_p95_s, db_locked (log lines), ingested, loadavg.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from docs_app.devservices import REPO, Services, configure, free_port, redis_port, signals_end_the_run, venv_bin

PASSWORD = "load test password 1234"  # noqa: S105 (throwaway accounts in a temporary database)
QUESTIONS = (
    "Which law governs this agreement?",
    "How can either party terminate the agreement, and with what notice?",
    "What does each party have to pay, and when?",
    "Who owns the intellectual property created under the agreement?",
    "How long do the confidentiality obligations last?",
    "What is the term of the agreement and can it be renewed?",
)
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_PAGE_IMAGE = re.compile(r'src="(/documents/\d+/pages/\d+\.png[^"]*)"')


@dataclass
class Tally:
    """Everything the simulated people saw; one lock, short critical sections."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    request_errors: Counter[str] = field(default_factory=Counter)
    page_s: list[float] = field(default_factory=list)
    ttft_s: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)  # done, abstained, failed, busy, lost

    def response(self, status: int, seconds: float, *, page: bool = True) -> None:
        with self.lock:
            self.statuses[status] += 1
            if page:
                self.page_s.append(seconds)

    def error(self, what: str) -> None:
        with self.lock:
            self.request_errors[what] += 1

    def outcome(self, what: str, ttft: float | None = None) -> None:
        with self.lock:
            self.outcomes[what] += 1
            if ttft is not None:
                self.ttft_s.append(ttft)


class Person(threading.Thread):
    def __init__(self, *, base: str, username: str, collection_id: int, document_ids: list[int], tally: Tally,
                 stop_at: float, give_up_at: float, seed: int) -> None:
        super().__init__(name=f"person-{username}", daemon=True)
        self.base, self.username, self.collection_id = base, username, collection_id
        self.document_ids, self.tally, self.stop_at, self.give_up_at = document_ids, tally, stop_at, give_up_at
        self.random = random.Random(seed)
        self.http = httpx.Client(base_url=base, timeout=httpx.Timeout(60.0, connect=10.0), follow_redirects=True)

    def run(self) -> None:
        try:
            if not self._log_in():
                return
            while time.monotonic() < self.stop_at:
                self._browse()
                self._ask()
        finally:
            self.http.close()

    def _get(self, url: str) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = self.http.get(url)
        except httpx.HTTPError as exc:
            self.tally.error(type(exc).__name__)
            return None
        self.tally.response(response.status_code, time.monotonic() - started)
        return response

    def _post(self, url: str, data: dict[str, Any], *, accept_json: bool = False) -> httpx.Response | None:
        started = time.monotonic()
        headers = {"X-CSRFToken": self.http.cookies.get("csrftoken") or "", "Referer": self.base + url}
        if accept_json:
            headers["Accept"] = "application/json"
        try:
            response = self.http.post(url, data=data, headers=headers)
        except httpx.HTTPError as exc:
            self.tally.error(type(exc).__name__)
            return None
        self.tally.response(response.status_code, time.monotonic() - started)
        return response

    def _think(self, low: float = 1.0, high: float = 4.0) -> None:
        time.sleep(min(self.random.uniform(low, high), max(0.0, self.stop_at - time.monotonic())))

    def _log_in(self) -> bool:
        page = self._get("/login/")
        token = _CSRF.search(page.text) if page is not None else None
        if token is None:
            return False
        done = self._post("/login/", {"username": self.username, "password": PASSWORD,
                                      "csrfmiddlewaretoken": token.group(1)})
        return done is not None and done.status_code == 200 and "/login/" not in str(done.url)

    def _browse(self) -> None:
        for url in ("/", f"/collections/{self.collection_id}/",
                    f"/collections/{self.collection_id}/status.json"):
            self._get(url)
            self._think(0.5, 2.0)
        page = self._get(f"/documents/{self.random.choice(self.document_ids)}/")
        image = _PAGE_IMAGE.search(page.text) if page is not None and page.status_code == 200 else None
        if image is not None:
            self._get(image.group(1).replace("&amp;", "&"))
        self._think()

    def _ask(self) -> None:
        asked_at = time.monotonic()
        response = self._post("/ask/", {"question": self.random.choice(QUESTIONS)}, accept_json=True)
        if response is None or response.status_code >= 500:
            return
        if response.status_code == 429:
            self.tally.outcome("busy")
            retry_after = float(response.headers.get("Retry-After", "30"))
            time.sleep(min(retry_after, max(0.0, self.stop_at - time.monotonic())))
            return
        if response.status_code != 201:
            self.tally.error(f"ask {response.status_code}")
            return
        self._follow(response.json()["stream_url"], asked_at)
        self._think(2.0, 6.0)

    def _follow(self, url: str, asked_at: float) -> None:
        """Read the answer's Server-Sent Events to the end (reconnecting with Last-Event-ID, as a browser does)."""
        first_token: float | None = None
        last_id = ""
        while time.monotonic() < self.give_up_at:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            event = ""
            try:
                with self.http.stream("GET", url, headers=headers) as response:
                    self.tally.response(response.status_code, 0.0, page=False)
                    if response.status_code != 200:
                        return
                    for line in response.iter_lines():
                        if line.startswith("id: "):
                            last_id = line[4:]
                        elif line.startswith("event: "):
                            event = line[7:]
                            if event == "token" and first_token is None:
                                first_token = time.monotonic()
                        elif line.startswith("data: ") and event in ("done", "error"):
                            data = json.loads(line[6:])
                            status = data.get("status", "failed") if event == "done" else (
                                "busy" if str(data.get("message", "")).startswith("Busy") else "failed")
                            self.tally.outcome(status, None if first_token is None else first_token - asked_at)
                            return
            except httpx.HTTPError as exc:
                self.tally.error(f"stream {type(exc).__name__}")
                time.sleep(2)
        self.tally.outcome("unanswered")


def _prepare(args: argparse.Namespace) -> tuple[list[str], int]:
    """Migrate, the people (viewers of one collection), and the seed documents ingested before the load."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from docs_app.models import Collection, Grant, Role

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    collection = Collection.objects.create(name="Load")
    usernames = [f"person{n:03d}" for n in range(args.users)]
    for name in usernames:
        user = User.objects.create_user(username=name, password=PASSWORD)
        Grant.objects.create(collection=collection, user=user, role=Role.VIEWER)
    return usernames, collection.pk


def _pdfs(args: argparse.Namespace) -> list[Path]:
    return sorted(p for p in args.pdfs.rglob("*") if p.suffix.lower() == ".pdf")


def _import(files: list[Path], folder: Path, env: dict[str, str], collection: str) -> None:
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, folder / path.name)
    subprocess.run([sys.executable, "manage.py", "import_folder", str(folder), "--collection", collection],
                   env=env, cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_ready(timeout_s: float) -> None:
    from docs_app.models import Document, DocumentStatus

    deadline = time.monotonic() + timeout_s
    while Document.objects.exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the seed documents were not ingested in time")
        time.sleep(1)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=180, help="seconds of load")
    parser.add_argument("--pdfs", type=Path, default=REPO.parent / "shared" / "data" / "legal" / "cuad_pdf")
    parser.add_argument("--seed-docs", type=int, default=4, help="documents ingested before the load")
    parser.add_argument("--bulk-docs", type=int, default=40, help="documents imported while the load runs")
    parser.add_argument("--answer-tokens", type=int, default=64)
    parser.add_argument("--drain-s", type=float, default=960,
                        help="wait this long for answers still queued (past DOCS_ANSWER_WAIT_MAX_S they are refused)")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-load-"))
    configure(workdir, DOCS_LLM_MAX_ANSWER_TOKENS=str(args.answer_tokens), DOCS_LOG_LEVEL="WARNING")
    os.environ["DOCS_PORT"] = str(free_port())
    files = _pdfs(args)
    seed, bulk = files[: args.seed_docs], files[args.seed_docs: args.seed_docs + args.bulk_docs]
    if len(seed) < args.seed_docs:
        sys.exit(f"not enough PDFs under {args.pdfs}")

    services = Services(log_dir=workdir / "logs", env=dict(os.environ))
    with signals_end_the_run():
        try:
            usernames, collection_id = _prepare(args)
            services.redis(port=redis_port(os.environ["DOCS_REDIS_URL"]), data_dir=workdir)
            services.chroma(port=int(os.environ["DOCS_CHROMA_PORT"]), path=workdir / "chroma")
            services.worker("ingest", queues="ingest", concurrency=2, loglevel="WARNING")
            services.worker("answer", queues="answer", concurrency=1, loglevel="WARNING")
            services.start("reconciler", [sys.executable, "manage.py", "reconcile", "--loop"])
            port = int(os.environ["DOCS_PORT"])
            # As the Procfile runs the web: gthread, 2 processes x 16 threads.
            services.start("web", [venv_bin("gunicorn"), "docs_app.wsgi:application", "--bind", f"127.0.0.1:{port}",
                                   "--worker-class", "gthread", "--workers", "2", "--threads", "16",
                                   "--timeout", "120", "--access-logfile", "-"], port=port)
            _import(seed, workdir / "seed", dict(os.environ), "Load")
            _wait_ready(1800)
            figures = _run(args, usernames, collection_id, port, bulk, workdir)
        finally:
            services.stop(grace_s=10)
    figures["db_locked"] = sum(log.read_text(errors="replace").count("database is locked")
                               for log in (workdir / "logs").glob("*.log"))
    print(json.dumps(figures))


def _run(args: argparse.Namespace, usernames: list[str], collection_id: int, port: int, bulk: list[Path],
         workdir: Path) -> dict[str, Any]:
    from docs_app.models import Answer, AnswerStatus, Document, DocumentStatus

    document_ids = list(Document.objects.filter(status=DocumentStatus.READY).values_list("pk", flat=True))
    tally = Tally()
    started = time.monotonic()
    stop_at = started + args.duration
    bulk_thread = threading.Thread(target=_import, args=(bulk, workdir / "bulk", dict(os.environ), "Load"),
                                   daemon=True)
    bulk_thread.start()
    people = [Person(base=f"http://127.0.0.1:{port}", username=name, collection_id=collection_id,
                     document_ids=document_ids, tally=tally, stop_at=stop_at, give_up_at=stop_at + args.drain_s,
                     seed=n)
              for n, name in enumerate(usernames)]
    for person in people:
        person.start()
        time.sleep(min(0.2, args.duration / max(1, len(people)) / 4))  # people arrive over a few seconds
    queue_max = 0
    load: list[float] = []
    while any(person.is_alive() for person in people):
        waiting = Answer.objects.filter(status__in=[AnswerStatus.PENDING, AnswerStatus.STREAMING]).count()
        queue_max = max(queue_max, waiting)
        load.append(os.getloadavg()[0])
        time.sleep(1)
    ingested = Document.objects.filter(status=DocumentStatus.READY).count() - len(document_ids)
    requests = sum(tally.statuses.values())
    return {
        "users": args.users,
        "requests": requests,
        "errors_5xx": sum(count for status, count in tally.statuses.items() if status >= 500),
        "ttft_p50_s": round(statistics.median(tally.ttft_s), 3) if tally.ttft_s else 0.0,
        "ttft_p95_s": _percentile(tally.ttft_s, 0.95),
        "queue_max": queue_max,
        "request_errors": sum(tally.request_errors.values()),
        "request_error_kinds": dict(tally.request_errors),
        "statuses": {str(status): count for status, count in sorted(tally.statuses.items())},
        "answered": tally.outcomes["done"] + tally.outcomes["abstained"],
        "busy": tally.outcomes["busy"],
        "failed_answers": tally.outcomes["failed"],
        "unanswered": tally.outcomes["unanswered"],
        "page_p50_s": round(statistics.median(tally.page_s), 3) if tally.page_s else 0.0,
        "page_p95_s": _percentile(tally.page_s, 0.95),
        "duration_s": round(time.monotonic() - started, 1),
        "ingested_during_load": ingested,
        "loadavg_mean": round(statistics.mean(load), 2) if load else 0.0,
        "loadavg_max": round(max(load), 2) if load else 0.0,
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    main()
