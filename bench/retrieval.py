"""Retrieval benchmark through the real stack: PDFs -> queue -> ingest worker -> Chroma + DB; every question
through docs_app.selectors.retrieval.chunks_retrieve, dense-only and hybrid, and for LegalBench-RAG questions also
hybrid in each natural phrasing of bench/phrasings.py (named first, named last, by one party, by a short name,
not named in a scope of the right document and 9 others, by its file name); then time to first token of a few
answers through the real answer queue with the configured (stand-in) model.

    python bench/retrieval.py --pdfs ../shared/data/legal/cuad_pdf \
        --queries ../shared/data/legal/cuad_queries_dev.jsonl --docs 60
    python bench/retrieval.py --pubmedqa ../shared/data/medical/pubmedqa_pqal.json [--pmids test|all]
    python bench/retrieval.py ... --variants fp32,auto,auto+all-terms   # one corpus, several settings

With --variants the corpus is re-embedded in each precision through the app's re-index (and questions embedded
in it too), and "+all-terms" turns the keyword candidate limit off: quality of each setting in one run.

Queries: one JSON object a line, {"id", "question", "pdf", "gold": [span, ...]}. A retrieved chunk is a hit
when it comes from the gold PDF and contains at least 60% of one gold span's distinct lower-cased alphanumeric
words (no spans: any chunk of the gold PDF). MRR is over the top 10. The last line printed is one JSON object
with every figure. Use --workdir to keep (and on a re-run reuse) the ingested corpus.
"""

from __future__ import annotations

import argparse
import html
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_app.devservices import configure, services_running

_ALNUM = re.compile(r"[a-z0-9]+")
TOP_K = 10


def words(text: str) -> set[str]:
    return set(_ALNUM.findall(text.lower()))


def is_hit(chunk_text: str, gold_spans: list[set[str]]) -> bool:
    if not gold_spans:
        return True
    chunk_words = words(chunk_text)
    return any(span and len(span & chunk_words) >= 0.6 * len(span) for span in gold_spans)


def pubmedqa_render(source: Path, out_dir: Path, *, pmids: str) -> tuple[Path, Path]:
    """One PDF per pmid with its CONTEXTS (never LONG_ANSWER: it gives the answer away) and the matching
    queries file (gold = that pmid's PDF, no spans)."""
    import pymupdf

    entries: dict[str, dict[str, Any]] = json.loads(source.read_text())
    if pmids == "test":
        split = json.loads((source.parent / "pubmedqa_test_ground_truth.json").read_text())
        entries = {pmid: entries[pmid] for pmid in split}
    pdf_dir = out_dir / "pubmedqa_pdf"
    pdf_dir.mkdir(parents=True, exist_ok=True)
    queries = out_dir / "pubmedqa_queries.jsonl"
    with queries.open("w") as out:
        for pmid, entry in entries.items():
            pdf_path = pdf_dir / f"{pmid}.pdf"
            if not pdf_path.exists():
                body = "".join(f"<h3>{html.escape(label.title())}</h3><p>{html.escape(text)}</p>"
                               for label, text in zip(entry["LABELS"], entry["CONTEXTS"], strict=True))
                rect = pymupdf.paper_rect("a4")
                margin = pymupdf.Rect(rect.x0 + 50, rect.y0 + 50, rect.x1 - 50, rect.y1 - 50)
                story = pymupdf.Story(html=body)
                writer = pymupdf.DocumentWriter(str(pdf_path))
                more = 1
                while more:
                    device = writer.begin_page(rect)
                    more, _ = story.place(margin)
                    story.draw(device)
                    writer.end_page()
                writer.close()
            query = {"id": pmid, "question": entry["QUESTION"], "pdf": pdf_path.name, "gold": []}
            out.write(json.dumps(query) + "\n")
    return pdf_dir, queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path)
    parser.add_argument("--queries", type=Path)
    parser.add_argument("--pubmedqa", type=Path, help="PubMedQA ori_pqal.json: render it and use it")
    parser.add_argument("--pmids", choices=["test", "all"], default="all")
    parser.add_argument("--docs", type=int, default=0, help="gold PDFs plus distractors (0: all)")
    parser.add_argument("--workdir", type=Path, help="keep the corpus here (reused by a re-run)")
    parser.add_argument("--ttft-runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20240817)
    parser.add_argument("--variants", default="", help="compare settings on one corpus, e.g. fp32,auto,auto+all-terms "
                                                      "(see compare_variants); no time to first token then")
    parser.add_argument("--no-phrasings", dest="phrasings", action="store_false",
                        help="only the benchmark's own form (LegalBench-RAG questions are also asked in natural "
                             "phrasings by default: bench/phrasings.py)")
    parser.add_argument("--abstention", type=Path, metavar="QUESTIONS",
                        help="also measure abstention: these questions (JSON lines with a 'question', e.g. "
                             "PubMedQA's against contracts) and the benchmark's asked in a scope without their "
                             "document are unanswerable; the benchmark's own, named, are answerable")
    parser.add_argument("--scope-size", type=int, default=10,
                        help="documents in the scope of an unnamed question (the right one and others)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    if args.pubmedqa:
        args.pdfs, args.queries = pubmedqa_render(args.pubmedqa, workdir, pmids=args.pmids)
    if not args.pdfs or not args.queries:
        parser.error("--pdfs and --queries (or --pubmedqa) are required")
    # Short answers: only the first token is timed.
    configure(workdir, DOCS_LLM_MAX_ANSWER_TOKENS="16")

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with services_running(workdir):
        run(args, workdir)


def run(args: argparse.Namespace, workdir: Path) -> None:
    from django.contrib.auth import get_user_model

    from bench.corpus import corpus_ingest
    from docs_app.models import Chunk, Collection, DocumentStatus, Grant, Role

    queries = [json.loads(line) for line in args.queries.read_text().splitlines() if line.strip()]
    gold_names = list(dict.fromkeys(q["pdf"] for q in queries))
    others = sorted(p.name for p in args.pdfs.iterdir() if p.is_file() and p.name not in set(gold_names))
    random.Random(args.seed).shuffle(others)
    wanted = max(args.docs, len(gold_names)) if args.docs else len(gold_names) + len(others)
    corpus = gold_names + others[: max(0, wanted - len(gold_names))]

    user, _ = get_user_model().objects.get_or_create(username="bench")
    collection, _ = Collection.objects.get_or_create(name="bench")
    Grant.objects.get_or_create(collection=collection, user=user, defaults={"role": Role.VIEWER})
    started = time.monotonic()
    docs = corpus_ingest(collection, [args.pdfs / name for name in corpus], poll_s=2)
    failed = list(docs.filter(status=DocumentStatus.FAILED).values_list("original_name", "error"))
    by_name = dict(docs.filter(status=DocumentStatus.READY).values_list("original_name", "id"))
    chunks = Chunk.objects.filter(document__collection=collection).count()
    print(f"corpus: {len(by_name)} ready documents ({len(failed)} failed), {chunks} chunks, "
          f"ingest wait {time.monotonic() - started:.0f}s")
    for name, error in failed:
        print(f"  failed: {name}: {error}")

    figures: dict[str, Any] = {"queries": len(queries), "documents": len(by_name)}
    if args.variants:
        figures["variants"] = compare_variants(args.variants.split(","), user=user, queries=queries, by_name=by_name,
                                               args=args)
        print(f"work directory: {workdir}")
        print(json.dumps(figures))
        return
    figures.update(evaluate(user=user, queries=queries, by_name=by_name, args=args))
    if args.abstention:
        figures["abstention"] = abstention(user=user, queries=queries, by_name=by_name, args=args)
    latency = figures["retrieval_ms"]
    print(f"hybrid retrieval latency p50 {latency['p50']} ms, p95 {latency['p95']} ms")
    if args.ttft_runs > 0:
        cold, ttfts = time_to_first_token(user=user, collection=collection,
                                          questions=[q["question"] for q in queries], runs=args.ttft_runs)
        figures["ttft_s"] = round(statistics.median(ttfts), 2)
        figures["ttft_cold_s"] = round(cold, 2)
        print(f"time to first token: median {figures['ttft_s']} s over {len(ttfts)} (cold, with model load: "
              f"{cold:.2f} s)")
    print(f"work directory: {workdir}")
    print(json.dumps(figures))


def evaluate(*, user: Any, queries: list[dict[str, Any]], by_name: dict[str, int],
             args: argparse.Namespace) -> dict[str, Any]:
    """hit@1, hit@5 and MRR of dense-only and hybrid retrieval (and of hybrid for each natural phrasing), and
    hybrid latency."""
    from bench.phrasings import PHRASINGS, rephrase
    from docs_app.selectors.retrieval import DENSE_ONLY, RankingOptions, chunks_retrieve

    figures: dict[str, Any] = {}
    latencies: list[float] = []
    # The benchmark's own form, dense only and hybrid; then, for LegalBench-RAG questions, each natural phrasing
    # (bench.phrasings), hybrid. "unnamed" asks in a scope of the right document and `--scope-size` - 1 others.
    phrased = all(q["question"].startswith("Consider ") and ";" in q["question"] for q in queries)
    runs = [("dense", "benchmark", DENSE_ONLY), ("hybrid", "benchmark", RankingOptions())]
    if phrased and args.phrasings:
        runs += [("hybrid", phrasing, RankingOptions()) for phrasing in PHRASINGS if phrasing != "benchmark"]
    all_documents = sorted(by_name.values())
    for label, phrasing, options in runs:
        hits1 = hits5 = 0
        reciprocal = 0.0
        for query in queries:
            gold_document = by_name.get(query["pdf"])
            spans = [words(span) for span in query.get("gold", [])]
            question = rephrase(query["question"], phrasing, key=query["id"], seed=args.seed, file_name=query["pdf"])
            scope = None
            if phrasing == "unnamed" and gold_document is not None:
                rng = random.Random(f"{args.seed}:{query['id']}:scope")
                others = [d for d in all_documents if d != gold_document]
                scope = [gold_document, *rng.sample(others, min(len(others), args.scope_size - 1))]
            t0 = time.perf_counter()
            found = chunks_retrieve(user=user, query=question, document_ids=scope, k=TOP_K, options=options)
            if label == "hybrid":
                latencies.append((time.perf_counter() - t0) * 1000)
            ranks = [i for i, c in enumerate(found, start=1)
                     if c.document_id == gold_document and is_hit(c.text, spans)]
            first = ranks[0] if ranks else None
            hits1 += first == 1
            hits5 += first is not None and first <= 5
            reciprocal += 1 / first if first else 0.0
        n = len(queries)
        name = label if phrasing == "benchmark" else f"{label} {phrasing}"
        figures[name] = {"hit@1": round(hits1 / n, 3), "hit@5": round(hits5 / n, 3),
                         "mrr": round(reciprocal / n, 3)}
        print(f"{name:20s} hit@1 {hits1 / n:.3f}  hit@5 {hits5 / n:.3f}  MRR {reciprocal / n:.3f}  (n={n})",
              flush=True)
    figures["retrieval_ms"] = {"p50": round(statistics.median(latencies), 1),
                               "p95": round(statistics.quantiles(latencies, n=20)[18], 1)}
    return figures


def abstention(*, user: Any, queries: list[dict[str, Any]], by_name: dict[str, int],
               args: argparse.Namespace) -> dict[str, Any]:
    """How well the answer path's evidence rule (services.answering.answer_evidence) tells questions the documents
    answer from those they do not.

    Answerable: each benchmark question (LegalBench-RAG's named in natural words, "named first"), over the whole
    corpus.
    Unanswerable: the same question asked in a scope of --scope-size documents without its own (the office asks
    about a contract that is not in the matter), and the --abstention questions (another domain) over the whole
    corpus. Abstention recall (unanswerable abstained on), precision (abstentions that were right) and the share
    of answerable questions abstained on, for the app's rule (best passage's similarity under the threshold, or a
    name in the question that no passage of the scope holds) and for similarity alone on a grid of thresholds."""
    from django.conf import settings

    from bench.phrasings import rephrase
    from docs_app.selectors.retrieval import chunks_retrieve, names_absent_from_scope
    from docs_app.services.answering import MIN_SIMILARITY

    def observe(question: str, scope: list[int] | None) -> tuple[float, bool]:
        found = chunks_retrieve(user=user, query=question, document_ids=scope, k=settings.ANSWER_MAX_SOURCES)
        absent = names_absent_from_scope(user=user, query=question, document_ids=scope)
        return max((hit.similarity for hit in found), default=0.0), bool(absent)

    all_documents = sorted(by_name.values())
    sets: dict[str, list[tuple[float, bool]]] = {"answerable": [], "document_absent": [], "other_domain": []}
    for query in queries:
        gold = by_name.get(query["pdf"])
        if gold is None:
            continue
        question = query["question"]
        if question.startswith("Consider ") and ";" in question:  # LegalBench-RAG's form: ask it naturally
            question = rephrase(question, "named_first", key=query["id"], seed=args.seed)
        sets["answerable"].append(observe(question, None))
        rng = random.Random(f"{args.seed}:{query['id']}:absent")
        others = [d for d in all_documents if d != gold]
        sets["document_absent"].append(observe(question, rng.sample(others, min(len(others), args.scope_size))))
    foreign = [json.loads(line)["question"] for line in args.abstention.read_text().splitlines() if line.strip()]
    sets["other_domain"] = [observe(question, None) for question in foreign[: len(queries)]]

    def at(threshold: float, *, names: bool) -> dict[str, Any]:
        def abstains(seen: tuple[float, bool]) -> bool:
            return seen[0] < threshold or (names and seen[1])

        share = {name: sum(map(abstains, seen)) / len(seen) for name, seen in sets.items()}
        unanswerable = sets["document_absent"] + sets["other_domain"]
        right = sum(map(abstains, unanswerable))
        wrong = sum(map(abstains, sets["answerable"]))
        return {"threshold": round(threshold, 3), "names": names, "recall": round(right / len(unanswerable), 3),
                "recall_other_domain": round(share["other_domain"], 3),
                "recall_document_absent": round(share["document_absent"], 3),
                "precision": round(right / (right + wrong), 3) if right + wrong else 1.0,
                "false_abstention": round(share["answerable"], 3)}

    figures: dict[str, Any] = {name: len(seen) for name, seen in sets.items()}
    figures["best_similarity_p50"] = {name: round(statistics.median(s for s, _ in seen), 3)
                                      for name, seen in sets.items()}
    figures["names_absent_share"] = {name: round(sum(a for _, a in seen) / len(seen), 3) for name, seen in sets.items()}
    figures["app"] = at(MIN_SIMILARITY, names=True)
    figures["with_names"] = [at(t / 100, names=True) for t in range(20, 56, 5)]
    figures["similarity_only"] = [at(t / 100, names=False) for t in range(20, 56, 5)]
    for row in [figures["app"], *figures["with_names"], *figures["similarity_only"]]:
        rule = "with names" if row["names"] else "similarity only"
        print(f"{rule:15s} below {row['threshold']:.2f}: recall {row['recall']:.3f} (other domain "
              f"{row['recall_other_domain']:.3f}, document absent {row['recall_document_absent']:.3f}), precision "
              f"{row['precision']:.3f}, answerable abstained {row['false_abstention']:.3f}", flush=True)
    return figures


def compare_variants(variants: list[str], *, user: Any, queries: list[dict[str, Any]],
                     by_name: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    """The same corpus and questions under several settings, in this run: "fp32", "bf16" or "auto" re-embed every
    chunk (and the questions) in that precision through the app's own re-index; a "+all-terms" suffix turns the
    keyword candidate limit off (DOCS_KEYWORD_MAX_SCORED=0), "+budget=N" sets it to N."""
    from django.test import override_settings

    from docs_app import registry
    from docs_app.adapters.embeddings import SentenceTransformerEmbedder, packaged_minilm_path
    from docs_app.selectors.keywords import estimates_forget
    from docs_app.services.index import index_rebuild

    results: dict[str, Any] = {}
    embedded_in = ""
    original = registry.embedder
    try:
        for variant in variants:
            precision, _, flag = variant.partition("+")
            if precision != embedded_in:
                embedder = SentenceTransformerEmbedder(model_path=packaged_minilm_path(), precision=precision)
                registry.embedder = lambda embedder=embedder: embedder  # type: ignore[misc]
                started = time.perf_counter()
                index_rebuild(reembed=True)
                print(f"re-embedded in {embedder.choice.precision} ({embedder.choice.reason}) in "
                      f"{time.perf_counter() - started:.0f} s")
                embedded_in = precision
            budget = {"KEYWORD_MAX_SCORED": 0} if flag == "all-terms" else (
                {"KEYWORD_MAX_SCORED": int(flag.removeprefix("budget="))} if flag.startswith("budget=") else {})
            with override_settings(**budget):
                print(f"variant {variant}:")
                estimates_forget()
                results[variant] = {"precision": embedder.choice.precision,
                                    **evaluate(user=user, queries=queries, by_name=by_name, args=args)}
    finally:
        registry.embedder = original  # type: ignore[misc]
    return results


def time_to_first_token(*, user: Any, collection: Any, questions: list[str],
                        runs: int) -> tuple[float, list[float]]:
    """Seconds from enqueueing a question (the real question_ask service) to its first `token` event in the
    answer's Redis Stream. The first run also loads the model in the worker and is reported apart."""
    from docs_app.models import Conversation
    from docs_app.services.actor import Actor
    from docs_app.services.answering import question_ask
    from docs_app.services.streams import stream_read

    conversation = Conversation.objects.create(owner=user, title="bench")
    conversation.collections.set([collection])
    times: list[float] = []
    for question in questions[: runs + 1]:
        t0 = time.monotonic()
        answer = question_ask(conversation=conversation, actor=Actor(user=user), text=question)
        last_id = "0-0"
        first: float | None = None
        finished = False
        # Wait for the end too: the next question must not meet this answer still holding the worker.
        while not finished and time.monotonic() - t0 < 600:
            for entry_id, event, _data in stream_read(answer_id=answer.pk, after=last_id, block_ms=1000):
                last_id = entry_id
                if first is None and event in {"token", "done", "error"}:
                    # An abstained or failed answer has no token: its verdict is what the user waits for.
                    first = time.monotonic() - t0
                finished = finished or event in {"done", "error"}
        times.append(first if first is not None else float("nan"))
    return times[0], times[1:] or times


if __name__ == "__main__":
    main()
