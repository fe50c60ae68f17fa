"""What the answer path costs on top of the model: time to first token and tokens/s through the whole app (web
service call -> queue -> answer worker -> retrieval -> prompt -> model -> Redis Stream read) against the same
prompts given to the model in this process, at about 2k and 8k tokens of context.

    python bench/answer_path.py --pdfs ../shared/data/legal/cuad_pdf --docs 5 --questions 3

Both sides use the configured model (the stand-in unless DOCS_LLM_MODEL_PATH is set) with the same settings and
the same order of prompts (llama.cpp reuses a shared prompt prefix, so order matters). The direct side runs
after the app's services have stopped, so neither competes with the other for the cores. The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from docs_app.devservices import configure, services_running

QUESTIONS = (
    "Which law governs this agreement, and where are disputes resolved?",
    "How can either party terminate the agreement, and with what notice?",
    "What does each party have to pay, and when are payments due?",
    "Who owns the intellectual property created under the agreement?",
    "What are the confidentiality obligations and how long do they last?",
)
# Sources given to the model per question: about 2k and about 8k tokens of context with ~200-token passages.
SIZES = {"2k": 8, "8k": 40}
CONTEXT_TOKENS = 10240
ANSWER_TOKENS = 48


def _ingest(pdfs: list[Path]) -> Any:
    from docs_app.models import Collection, Document, DocumentStatus
    from docs_app.services.actor import SYSTEM
    from docs_app.services.documents import document_upload

    collection, _ = Collection.objects.get_or_create(name="bench-answer-path")
    if not Document.objects.filter(collection=collection).exists():
        for pdf in pdfs:
            with pdf.open("rb") as source:
                document_upload(collection=collection, name=pdf.name, source=source, actor=SYSTEM)
    deadline = time.monotonic() + 1800
    while Document.objects.filter(collection=collection).exclude(
            status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists():
        if time.monotonic() > deadline:
            raise RuntimeError("ingestion did not finish")
        time.sleep(1)
    return collection


def _app_side(collection: Any, questions: list[str]) -> tuple[list[dict[str, float]], list[list[Any]]]:
    """Ask through the service the web view calls; read the stream as the SSE relay does. Also returns the
    prompts the worker built (rebuilt here from the same rows with the same functions)."""
    from django.contrib.auth import get_user_model

    from docs_app import registry
    from docs_app.models import Grant, Question, Role
    from docs_app.services.actor import Actor
    from docs_app.services.answering import answer_evidence, answer_prompt, conversation_start
    from docs_app.services.streams import stream_read

    user, _ = get_user_model().objects.get_or_create(username="bench-asker")
    Grant.objects.get_or_create(collection=collection, user=user, role=Role.VIEWER)
    figures, prompts = [], []
    for text in questions:
        started = time.monotonic()
        answer = conversation_start(actor=Actor(user=user), text=text, collection_ids=[collection.pk])
        first = last = 0.0
        pieces, after, finished = 0, "0-0", False
        while not finished:
            for entry_id, event, _data in stream_read(answer_id=answer.pk, after=after, block_ms=30000):
                after = entry_id
                now = time.monotonic()
                if event == "token":
                    pieces += 1
                    first = first or now
                    last = now
                finished = finished or event in {"done", "error"}
            if time.monotonic() - started > 900:
                raise RuntimeError(f"no answer to {text!r} within 15 minutes")
        figures.append({"ttft_s": first - started, "tokens": pieces,
                        "tokens_per_s": (pieces - 1) / (last - first) if pieces > 1 and last > first else 0.0})
        question = Question.objects.get(answer__pk=answer.pk)
        relevant = answer_evidence(question).relevant
        messages, _shown = answer_prompt(question, relevant=relevant, model=registry.language_model())
        prompts.append(messages)
    return figures, prompts


def _direct_side(prompts: list[list[Any]]) -> tuple[list[dict[str, float]], list[int]]:
    from django.conf import settings

    from docs_app import registry

    model = registry.language_model()
    figures, sizes = [], []
    for messages in prompts:
        sizes.append(sum(model.count_tokens(m.content) for m in messages))
        started = time.monotonic()
        first = last = 0.0
        pieces = 0
        for _piece in model.stream_chat(messages, max_tokens=settings.LLM_MAX_ANSWER_TOKENS, temperature=0.1):
            pieces += 1
            last = time.monotonic()
            first = first or last
        figures.append({"ttft_s": first - started, "tokens": pieces,
                        "tokens_per_s": (pieces - 1) / (last - first) if pieces > 1 and last > first else 0.0})
    return figures, sizes


def _median(rows: list[dict[str, float]], key: str) -> float:
    values = [row[key] for row in rows if row[key] > 0]
    return round(statistics.median(values), 3) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pdfs", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=5)
    parser.add_argument("--questions", type=int, default=3, help="questions per context size (median over them)")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-answer-path-"))
    pdfs = sorted(args.pdfs.glob("*.pdf"))[: args.docs] + sorted(args.pdfs.glob("*.PDF"))[: args.docs]
    pdfs = sorted(pdfs)[: args.docs]
    questions = list(QUESTIONS[: args.questions])

    configure(workdir, DOCS_LLM_CONTEXT_TOKENS=str(CONTEXT_TOKENS), DOCS_LLM_MAX_ANSWER_TOKENS=str(ANSWER_TOKENS))
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from docs_app import registry
    from docs_app.services import answering

    call_command("migrate", verbosity=0)
    results: dict[str, Any] = {}
    for label, sources in SIZES.items():
        # The worker reads it from its environment at start; this process from settings.
        os.environ["DOCS_ANSWER_MAX_SOURCES"] = str(sources)
        settings.ANSWER_MAX_SOURCES = sources
        with services_running(workdir, concurrency=1):
            collection = _ingest(pdfs)
            app, prompts = _app_side(collection, questions)
        registry.language_model.cache_clear()  # a fresh model, as the freshly started worker had
        answering._model = None
        direct, sizes = _direct_side(prompts)
        row = {
            "prompt_tokens_median": statistics.median(sizes),
            "app_ttft_s": _median(app, "ttft_s"), "direct_ttft_s": _median(direct, "ttft_s"),
            "app_tokens_per_s": _median(app, "tokens_per_s"), "direct_tokens_per_s": _median(direct, "tokens_per_s"),
        }
        row["ttft_ratio"] = round(row["app_ttft_s"] / row["direct_ttft_s"], 3) if row["direct_ttft_s"] else None
        row["tokens_per_s_ratio"] = (round(row["direct_tokens_per_s"] / row["app_tokens_per_s"], 3)
                                     if row["app_tokens_per_s"] else None)
        results[label] = row
        print(f"{label}: prompt {row['prompt_tokens_median']} tokens; first token app {row['app_ttft_s']} s vs "
              f"direct {row['direct_ttft_s']} s (x{row['ttft_ratio']}); tokens/s app {row['app_tokens_per_s']} vs "
              f"direct {row['direct_tokens_per_s']} (x{row['tokens_per_s_ratio']})", flush=True)
    print(json.dumps({"questions": len(questions), "docs": len(pdfs), **results}))


if __name__ == "__main__":
    main()
