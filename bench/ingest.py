"""Ingestion throughput: our pipeline, today's configuration of it and a naive pipeline, on the same PDFs in one run.

    .venv/bin/python bench/ingest.py --pdfs ../shared/data/legal/cuad_pdf --limit 50 --rounds 3

Three ways to index the same PDFs, run in turn (the order rotates every round, so a burst of load from a
neighbour on a shared machine does not always fall on the same one); each figure is the median over the rounds:

- ours: the real pipeline (upload -> Redis -> Celery ingest workers -> sandboxed extraction -> chunking ->
  embedding -> Chroma upsert -> Chunk rows and keyword index) with the embedder's own choices: the precision it
  proves at start (bf16 where the CPU has it), threads = cores / worker processes, batches of 32.
- today: the same pipeline as it was configured before issue 14: fp32, every process using all cores, batches of 64.
  (It still sorts a document's chunks by length, which the old code did not: if anything this flatters today.)
- naive: the pipeline the issue compares against, in this process: PyMuPDF page text, 1,000-character chunks
  with 200 characters of overlap, all-MiniLM-L6-v2 in fp32 with sentence-transformers' defaults, Chroma upsert;
  no sandbox, no database, no queue.

Then the bare embedder on exactly the chunk texts `ours` made, in this process (median of --embed-runs), in the
precision it chose and in fp32. Pages/s counts pages of documents that became READY. The last line is one JSON
object with every figure, including the machine's load average before and after, the CPU's notable flags and why
the embedder chose its precision there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_app.devservices import Services, configure, redis_port

NAIVE_CHUNK_CHARS = 1000
NAIVE_OVERLAP_CHARS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2, help="ingest worker processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--embed-runs", type=int, default=3)
    parser.add_argument("--only", default="ours,today,naive", help="comma-separated subset to run")
    args = parser.parse_args()
    files = sorted(p for p in args.pdfs.rglob("*") if p.suffix.lower() == ".pdf")[: args.limit]
    if not files:
        sys.exit(f"no PDFs under {args.pdfs}")

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    configure(workdir)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    load_before = os.getloadavg()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a killed run still stops its services
    services = Services(log_dir=workdir / "logs", env=dict(os.environ))
    try:
        services.redis(port=redis_port(os.environ["DOCS_REDIS_URL"]), data_dir=workdir)
        services.chroma(port=int(os.environ["DOCS_CHROMA_PORT"]), path=workdir / "chroma")
        figures = run(args, files, services)
    finally:
        services.stop()
    figures["load_average_before"] = [round(x, 2) for x in load_before]
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    figures["cores"] = os.cpu_count()
    print(json.dumps(figures))
    shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, files: list[Path], services: Services) -> dict[str, Any]:
    cores = str(os.cpu_count() or 1)
    pipelines: dict[str, Callable[[int], dict[str, Any]]] = {
        "ours": lambda r: pipeline_run(f"ours-{r}", files, services, concurrency=args.concurrency, env={}),
        "today": lambda r: pipeline_run(f"today-{r}", files, services, concurrency=args.concurrency, env={
            "DOCS_EMBED_PRECISION": "fp32", "DOCS_EMBED_THREADS": cores, "DOCS_EMBED_BATCH_SIZE": "64"}),
        "naive": lambda r: naive_run(f"naive-{r}", files),
    }
    names = [name for name in pipelines if name in args.only.split(",")]
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[: round_ % len(names)]
        for name in order:
            result = pipelines[name](round_)
            results[name].append(result)
            print(f"round {round_ + 1} {name:5s}: {result['pages']} pages, {result['chunks']} chunks in "
                  f"{result['wall_s']:.1f} s = {result['pages_per_s']:.2f} pages/s "
                  f"({result.get('failed', 0)} failed) {result.get('embedder', '')}", flush=True)

    figures: dict[str, Any] = {"documents": len(files), "rounds": args.rounds, "ingest_processes": args.concurrency}
    for name in names:
        runs = results[name]
        prefix = "" if name == "ours" else f"{name}_"
        figures[f"{prefix}pages_per_s"] = round(statistics.median(r["pages_per_s"] for r in runs), 2)
        figures[f"{prefix}chunks_per_s"] = round(statistics.median(r["chunks_per_s"] for r in runs), 2)
        figures[f"{prefix}pages"] = runs[-1]["pages"]
        figures[f"{prefix}chunks"] = runs[-1]["chunks"]
        figures[f"{prefix}runs_pages_per_s"] = [round(r["pages_per_s"], 2) for r in runs]
        if "embedder" in runs[-1]:
            figures[f"{prefix}embedder"] = runs[-1]["embedder"]
        if runs[-1].get("failed"):
            figures[f"{prefix}failed"] = runs[-1]["failed"]
    if "ours" in results:
        if "today" in results:
            figures["speedup_vs_today"] = round(figures["pages_per_s"] / figures["today_pages_per_s"], 2)
        if "naive" in results:
            figures["speedup_vs_naive"] = round(figures["pages_per_s"] / figures["naive_pages_per_s"], 2)
        figures.update(embed_only(results["ours"][-1]["texts"], runs=args.embed_runs))
        figures["pipeline_overhead_ratio"] = round(figures["embed_only_chunks_per_s"] / figures["chunks_per_s"], 2)
    return figures


def pipeline_run(label: str, files: list[Path], services: Services, *, concurrency: int,
                 env: dict[str, str]) -> dict[str, Any]:
    """Our pipeline through a fresh worker with `env` on top of the run's settings. Timed from the first upload
    to the last document finished; the worker has loaded and proved its embedder before."""
    from bench.corpus import corpus_ingest
    from docs_app import registry
    from docs_app.models import Chunk, Collection, DocumentStatus
    from docs_app.services.model_status import EMBEDDER_STATUS_KEY
    from docs_app.services.streams import redis_client

    client = redis_client()
    client.delete(EMBEDDER_STATUS_KEY)
    worker = services.worker(label, queues="ingest", concurrency=concurrency, loglevel="WARNING",
                             env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 300
        while client.hlen(EMBEDDER_STATUS_KEY) < concurrency:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"{label}: the worker did not load its embedder; see {services.log_dir}")
            time.sleep(0.2)
        embedder = json.loads(next(iter(client.hvals(EMBEDDER_STATUS_KEY))))
        collection = Collection.objects.create(name=label)
        started = time.perf_counter()
        documents = corpus_ingest(collection, files, poll_s=0.1)
        elapsed = time.perf_counter() - started
    finally:
        services.stop(worker)
    ready = documents.filter(status=DocumentStatus.READY)
    pages = sum(ready.values_list("page_count", flat=True))
    texts = [" ".join(t.split()) for t in Chunk.objects.filter(document__in=ready).values_list("text", flat=True)]
    failed = documents.filter(status=DocumentStatus.FAILED).count()
    # The next run starts from the same empty indexes.
    documents.delete()
    registry.vector_store().reset()
    return {"pages": pages, "chunks": len(texts), "wall_s": elapsed, "pages_per_s": pages / elapsed,
            "chunks_per_s": len(texts) / elapsed, "failed": failed, "texts": texts,
            "embedder": f"{embedder.get('precision')}, {embedder.get('threads')} thread(s)/process"}


def naive_split(text: str, *, size: int = NAIVE_CHUNK_CHARS, overlap: int = NAIVE_OVERLAP_CHARS) -> list[str]:
    """Recursive character splitting as the common RAG recipes do it: cut at paragraph breaks, then line
    breaks, then spaces, into pieces of at most `size` characters, each starting about `overlap` characters
    before the previous one ended."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    for separator in ("\n\n", "\n", " "):
        if separator in text:
            pieces = text.split(separator)
            break
    else:
        return [text[i:i + size] for i in range(0, len(text), size - overlap)]
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for piece in pieces:
        if len(piece) > size:
            chunks.extend(naive_split(piece, size=size, overlap=overlap))
            continue
        if current and length + len(separator) + len(piece) > size:
            chunks.append(separator.join(current))
            while current and length > overlap:
                length -= len(current.pop(0)) + len(separator)
        current.append(piece)
        length = sum(len(p) for p in current) + len(separator) * (len(current) - 1)
    if current:
        chunks.append(separator.join(current))
    return [chunk.strip() for chunk in chunks if chunk.strip()]


_naive_model: Any = None


def naive_run(label: str, files: list[Path]) -> dict[str, Any]:
    """The naive pipeline, in this process with all its cores (how such a script runs)."""
    global _naive_model
    import chromadb
    import pymupdf
    import torch
    from chromadb.config import Settings as ChromaSettings
    from sentence_transformers import SentenceTransformer

    from docs_app.adapters.embeddings import packaged_minilm_path

    torch.set_num_threads(os.cpu_count() or 1)
    if _naive_model is None:
        _naive_model = SentenceTransformer(str(packaged_minilm_path()), device="cpu", local_files_only=True)
        _naive_model.encode(["warm up"])
    client = chromadb.HttpClient(host="127.0.0.1", port=int(os.environ["DOCS_CHROMA_PORT"]),
                                 settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.get_or_create_collection(label, embedding_function=None, metadata={"hnsw:space": "cosine"})
    pages = chunks = 0
    started = time.perf_counter()
    for number, path in enumerate(files):
        with pymupdf.open(path) as pdf:
            texts, metadatas = [], []
            for page in pdf:
                for piece in naive_split(page.get_text()):
                    texts.append(piece)
                    metadatas.append({"source": path.name, "page": page.number + 1})
                pages += 1
        if not texts:
            continue
        vectors = _naive_model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        collection.upsert(ids=[f"{number}-{i}" for i in range(len(texts))], embeddings=vectors, documents=texts,
                          metadatas=metadatas)
        chunks += len(texts)
    elapsed = time.perf_counter() - started
    client.delete_collection(label)
    return {"pages": pages, "chunks": chunks, "wall_s": elapsed, "pages_per_s": pages / elapsed,
            "chunks_per_s": chunks / elapsed}


def embed_only(texts: list[str], *, runs: int) -> dict[str, Any]:
    """The bare embedder on the pipeline's own chunk texts, in this process: the precision it chooses here and
    fp32, alternating run by run."""
    from django.conf import settings

    from docs_app.adapters.embeddings import SentenceTransformerEmbedder, packaged_minilm_path

    chosen = SentenceTransformerEmbedder(model_path=packaged_minilm_path(), batch_size=settings.EMBED_BATCH_SIZE)
    exact = SentenceTransformerEmbedder(model_path=packaged_minilm_path(), batch_size=settings.EMBED_BATCH_SIZE,
                                        precision="fp32")
    times: dict[str, list[float]] = {"chosen": [], "fp32": []}
    for embedder in (chosen, exact):
        embedder.embed(texts[:64])  # first-call costs are not throughput
    for _ in range(runs):
        for name, embedder in (("chosen", chosen), ("fp32", exact)):
            start = time.perf_counter()
            embedder.embed(texts)
            times[name].append(time.perf_counter() - start)
    return {
        "embed_only_chunks_per_s": round(len(texts) / statistics.median(times["chosen"]), 2),
        "embed_only_fp32_chunks_per_s": round(len(texts) / statistics.median(times["fp32"]), 2),
        "embed_only_precision": chosen.choice.precision,
        "embed_only_threads": chosen.describe()["threads"],
        # Why that precision on this CPU (its probe's cosine and speed-up): figures from another CPU differ.
        "embed_only_reason": chosen.choice.reason,
        "cpu_flags": chosen.describe()["cpu_flags"],
    }


if __name__ == "__main__":
    main()
