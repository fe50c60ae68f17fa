"""Retrieval at a firm's size, without hours of embedding: real chunks replicated across many documents and
collections.

    .venv/bin/python bench/scale.py --chunks 100000 --workdir /tmp/scale-100k
    .venv/bin/python bench/scale.py --chunks 1000000 --workdir /tmp/scale-1m

1. A base corpus goes through the real pipeline (queue, workers, extraction, chunking, embedding): the gold
   contracts of the CUAD dev questions plus distractors (--base-docs), in collection "base".
2. Its READY documents are copied, chunk rows and all, into documents spread over --collections collections until
   the database holds --chunks chunks: same text (so the keyword index sees a real vocabulary at that size),
   vectors slightly perturbed (Gaussian noise, renormalised; cosine to the original about 0.995), written to the
   keyword index by the database triggers and to Chroma by the app's own vector writer.
3. Four readers: one collection of the copies (1% of the collections), 3%, 10%, and everything (the copies and
   the base). At a million chunks the 1% reader's passages are compared exactly, the others' dense side is an
   unfiltered search completed from the keyword documents. Each asks the dev questions through
   docs_app.selectors.retrieval.chunks_retrieve, the function the answer worker calls, with the permission
   filters computed from the database as always. Latency is wall time per question, embedding included; the
   keyword and dense parts are timed inside it.
4. The same run also times the keyword query shape the first version used (FTS5 ranks every match, the collection
   filter applies afterwards) on the same questions and readers, so the keyword side's ratio is same-run.

Also: hit@5 of the everything-reader counting any copy of the gold contract (replicas are near-duplicates, so this
is a floor, not a quality figure), index sizes on disk, resident memory of this process (it retrieves like an
answer worker, without the LLM) and of the Chroma server. The last line is one JSON object:
{"chunks": N, "retrieval_ms": {"p50", "p95"} (all readers pooled), "by_reach": {...}, ...}.
A --workdir is reused by a later run with the same --chunks (the corpus is built once).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.retrieval import is_hit, words
from docs_app.devservices import configure, services_running

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DOCS_SHARED_DATA", REPO.parent / "shared" / "data")) / "legal"
NOISE_SIGMA = 0.005  # per dimension: |noise| ~ 0.1 for a unit vector, cosine to the original ~0.995
REACHES = (("1%", 0.01), ("3%", 0.03), ("10%", 0.10), ("100%", 1.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, required=True)
    parser.add_argument("--collections", type=int, default=100)
    parser.add_argument("--pdfs", type=Path, default=SHARED / "cuad_pdf")
    parser.add_argument("--queries", type=Path, default=SHARED / "cuad_queries_dev.jsonl")
    parser.add_argument("--base-docs", type=int, default=60)
    parser.add_argument("--questions", type=int, default=0, help="dev questions per reader (0: all)")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--seed", type=int, default=20240817)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    configure(workdir, DOCS_LLM_MAX_ANSWER_TOKENS="16")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed run still stops its services
    load_before = os.getloadavg()
    with services_running(workdir):
        figures = run(args, workdir)
    figures["load_average_before"] = [round(x, 2) for x in load_before]
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(f"work directory: {workdir}")
    print(json.dumps(figures))


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from docs_app.models import Chunk

    queries = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    if args.questions:
        queries = queries[: args.questions]
    base = base_corpus(args, queries)
    started = time.monotonic()
    replicate(args, base)
    total = Chunk.objects.count()
    print(f"corpus: {total} chunks ({time.monotonic() - started:.0f} s to replicate)", flush=True)
    readers = make_readers(args)
    figures: dict[str, Any] = {"chunks": total, "collections": args.collections, "questions": len(queries),
                               "base_chunks": base["chunks"]}
    figures.update(measure(readers, queries, base))
    figures["keyword_old_shape_ms"] = old_keyword_shape(readers, queries)
    figures["index_bytes"] = index_sizes(workdir)
    figures["rss_mb"] = memory()
    return figures


# --- the corpus ----------------------------------------------------------------------------------------------

def base_corpus(args: argparse.Namespace, queries: list[dict[str, Any]]) -> dict[str, Any]:
    """The real pipeline on the gold contracts plus distractors; reused when the work directory has it."""
    from bench.corpus import corpus_ingest
    from docs_app.models import Chunk, Collection, DocumentStatus

    collection, created = Collection.objects.get_or_create(name="base")
    gold = list(dict.fromkeys(q["pdf"] for q in queries))
    others = sorted(p.name for p in args.pdfs.iterdir() if p.is_file() and p.name not in set(gold))
    random.Random(args.seed).shuffle(others)
    corpus = gold + others[: max(0, args.base_docs - len(gold))]
    documents = corpus_ingest(collection, [args.pdfs / name for name in corpus] if created else [], poll_s=2)
    ready = documents.filter(status=DocumentStatus.READY)
    by_name = dict(ready.values_list("original_name", "id"))
    chunks = Chunk.objects.filter(document__in=ready).count()
    print(f"base corpus: {len(by_name)} documents, {chunks} chunks", flush=True)
    return {"collection": collection, "by_name": by_name, "chunks": chunks}


def replicate(args: argparse.Namespace, base: dict[str, Any]) -> None:
    """Copies of the base documents over the collections until the database holds args.chunks chunks."""
    from django.db import connection, transaction

    from docs_app.models import Chunk, Collection, Document, DocumentStatus, chunk_keyword_scope
    from docs_app.services.index import ChunkPlace, vectors_upsert

    collections = [Collection.objects.get_or_create(name=f"matter {i:04d}")[0] for i in range(args.collections)]
    total = Chunk.objects.count()
    if total >= args.chunks:
        return
    sources = list(Document.objects.filter(pk__in=base["by_name"].values()).order_by("pk"))
    headings = {d.pk: list(Chunk.objects.filter(document=d).order_by("ordinal").values_list("heading", flat=True))
                for d in sources}
    rows_of = {d.pk: list(Chunk.objects.filter(document=d).order_by("ordinal").values_list(
        "ordinal", "page", "char_start", "char_end", "text", "embedding")) for d in sources}
    rng = np.random.default_rng(args.seed)
    copy = Document.objects.exclude(collection=base["collection"]).count()
    started = time.monotonic()
    while total < args.chunks:
        batch_places: list[ChunkPlace] = []
        batch_vectors: list[np.ndarray[Any, Any]] = []
        with transaction.atomic():
            while total < args.chunks and len(batch_places) < 5000:
                source = sources[copy % len(sources)]
                collection = collections[copy % len(collections)]
                copy += 1
                document = Document.objects.create(
                    collection=collection, title=f"{source.title} (copy {copy})", original_name=source.original_name,
                    stored_name=f"scale-{copy}", sha256=hashlib.sha256(f"{source.sha256}:{copy}".encode()).hexdigest(),
                    size_bytes=source.size_bytes, page_count=source.page_count, pages_done=source.page_count or 0,
                    status=DocumentStatus.READY, progress=100, version=1, chunk_count=len(rows_of[source.pk]))
                rows = rows_of[source.pk]
                vectors = np.stack([np.frombuffer(bytes(r[5]), dtype=np.float32) for r in rows])
                vectors = vectors + rng.normal(0.0, NOISE_SIGMA, vectors.shape).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                with connection.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO docs_app_chunk (document_id, ordinal, page, char_start, char_end, text, "
                        "embedding, keyword_scope, heading) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        [(document.pk, o, p, s, e, t, vectors[i].tobytes(),
                          chunk_keyword_scope(collection_id=collection.pk, document_id=document.pk, ordinal=o),
                          headings[source.pk][i])
                         for i, (o, p, s, e, t, _) in enumerate(rows)])
                batch_places += [ChunkPlace(document.pk, collection.pk, 1, r[0], r[1]) for r in rows]
                batch_vectors.append(vectors)
                total += len(rows)
        vectors_upsert(places=batch_places, embeddings=np.concatenate(batch_vectors))
        rate = (total - base["chunks"]) / max(time.monotonic() - started, 1e-9)
        print(f"  {total} chunks ({rate:.0f} chunks/s)", flush=True)


def make_readers(args: argparse.Namespace) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    from docs_app.models import Collection, Grant, Role

    readers = {}
    copies = list(Collection.objects.exclude(name="base").order_by("name"))
    for label, share in REACHES:
        user, _ = get_user_model().objects.get_or_create(username=f"reader-{label.rstrip('%')}")
        readable = copies[: max(1, round(share * len(copies)))]
        if share >= 1.0:
            readable = list(Collection.objects.all())
        for collection in readable:
            Grant.objects.get_or_create(collection=collection, user=user, defaults={"role": Role.VIEWER})
        readers[label] = user
    return readers


# --- measuring -----------------------------------------------------------------------------------------------

@contextmanager
def timed(owner: Any, name: str, spent: list[float]) -> Iterator[None]:
    """Adds the time spent in owner.name to spent[0] while the block runs."""
    original: Callable[..., Any] = getattr(owner, name)

    def wrapper(*a: Any, **kw: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            spent[0] += time.perf_counter() - start

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 1), "p95": round(statistics.quantiles(values, n=20)[18], 1)}


def measure(readers: dict[str, Any], queries: list[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings
    from django.test import override_settings

    from docs_app import registry
    from docs_app.models import Document
    from docs_app.selectors import retrieval

    copy_names = dict(Document.objects.values_list("pk", "original_name"))
    store = registry.vector_store()
    for query in queries[:3]:  # warm-up: model load, first Chroma query, page cache
        retrieval.chunks_retrieve(user=readers["100%"], query=query["question"], k=10)
    pooled: list[float] = []
    by_reach: dict[str, Any] = {}
    for label, user in readers.items():
        by_reach[label] = ask_all(user, queries, store=store, copy_names=copy_names)
        pooled += by_reach[label].pop("_totals")
        print(f"reader {label:>4}: {by_reach[label]}", flush=True)
    # The same questions for the reader of everything with every term kept: what the keyword budget costs in
    # latency and what it changes in what is found, in this run.
    with override_settings(KEYWORD_MAX_SCORED=0):
        unpruned = ask_all(readers["100%"], queries, store=store, copy_names=copy_names)
    unpruned.pop("_totals")
    print(f"reader 100%, every term kept: {unpruned}", flush=True)
    return {"retrieval_ms": percentiles(pooled), "by_reach": by_reach,
            "keyword_max_scored": settings.KEYWORD_MAX_SCORED, "reader_100_every_term_kept": unpruned}


def ask_all(user: Any, queries: list[dict[str, Any]], *, store: Any, copy_names: dict[int, str]) -> dict[str, Any]:
    """Every question for one reader, timed whole and in parts; hit@5 counts a passage of any copy of the gold
    contract holding the gold span."""
    from docs_app import registry
    from docs_app.selectors import retrieval

    total, cpu, keyword, dense, embed = [], [], [], [], []
    hits5 = 0
    for query in queries:
        k_spent, d_spent, e_spent = [0.0], [0.0], [0.0]
        with timed(retrieval, "fts5_rows", k_spent), timed(store, "query", d_spent), \
                timed(registry.embedder(), "embed", e_spent):
            start, start_cpu = time.perf_counter(), time.process_time()
            found = retrieval.chunks_retrieve(user=user, query=query["question"], k=10)
            total.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
        keyword.append(k_spent[0] * 1000)
        dense.append(d_spent[0] * 1000)
        embed.append(e_spent[0] * 1000)
        spans = [words(span) for span in query.get("gold", [])]
        hits5 += any(copy_names.get(c.document_id) == query["pdf"] and is_hit(c.text, spans) for c in found[:5])
    # CPU: this process only (embedding, SQLite, Python); the Chroma server's share is in dense_ms.
    return {"retrieval_ms": percentiles(total), "retrieval_cpu_ms": percentiles(cpu),
            "keyword_ms": percentiles(keyword), "dense_ms": percentiles(dense),
            "embed_ms": percentiles(embed), "hit@5_any_copy": round(hits5 / len(queries), 3), "_totals": total}


def old_keyword_shape(readers: dict[str, Any], queries: list[dict[str, Any]]) -> dict[str, Any]:
    """The first version's keyword query (rank every match, then join and filter), and today's, on the same
    questions and readers: the passage query of the whole question, as chunks_retrieve issues it."""
    from django.db import connection

    from docs_app.models import DocumentStatus
    from docs_app.pipeline.ranking import fts5_query, keyword_terms
    from docs_app.selectors.keywords import fts5_rows
    from docs_app.selectors.retrieval import allowed_collection_ids

    out: dict[str, Any] = {}
    for label, user in readers.items():
        allowed = allowed_collection_ids(user=user)
        old, new = [], []
        for query in queries:
            match = fts5_query(keyword_terms(query["question"]))
            sql = (
                "SELECT c.id, c.document_id FROM docs_app_chunk_fts f JOIN docs_app_chunk c ON c.id = f.rowid "
                "JOIN docs_app_document d ON d.id = c.document_id WHERE docs_app_chunk_fts MATCH %s AND d.status = %s "
                f"AND d.collection_id IN ({', '.join(['%s'] * len(allowed))}) "
                "ORDER BY bm25(docs_app_chunk_fts), c.id LIMIT 50"
            )
            start = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(sql, [match, DocumentStatus.READY.value, *allowed])
                cursor.fetchall()
            old.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            fts5_rows(keyword_terms(query["question"]), collection_ids=allowed, limit=50)
            new.append((time.perf_counter() - start) * 1000)
        out[label] = {"old": percentiles(old), "new": percentiles(new),
                      "speedup_p50": round(statistics.median(old) / max(statistics.median(new), 1e-6), 1)}
        print(f"keyword query, reader {label:>4}: {out[label]}", flush=True)
    return out


def index_sizes(workdir: Path) -> dict[str, int]:
    from django.db import connection

    sizes: dict[str, int] = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(length(block)), 0) FROM docs_app_chunk_fts_data")
        sizes["keyword_index"] = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_size")
        page = int(cursor.fetchone()[0])
        cursor.execute("PRAGMA page_count")
        sizes["database_file"] = int(cursor.fetchone()[0]) * page
    sizes["chroma_dir"] = sum(p.stat().st_size for p in (workdir / "chroma").rglob("*") if p.is_file())
    return sizes


def memory() -> dict[str, float]:
    """Resident memory in MB: this process (peak and now) and the Chroma server."""
    out = {"bench_process_peak": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    out["bench_process_now"] = _rss_of(os.getpid())
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "chroma run" in cmdline and os.environ["DOCS_CHROMA_PORT"] in cmdline:
                out["chroma_server"] = _rss_of(int(pid))
                out["chroma_server_peak"] = _rss_of(int(pid), field="VmHWM")
    return out


def _rss_of(pid: int, *, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


if __name__ == "__main__":
    main()
