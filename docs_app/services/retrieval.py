"""Hybrid retrieval over the collections a person may read: dense (vector store) + keyword (DB full text),
fused by reciprocal rank, every hit re-checked against the DB before anyone sees it.

The shape of the method, and why:
- Questions often first name the document and then ask about a clause ("Consider the <contract>; <question>").
  Words that pick the document (party names) and words that pick the passage (the clause topic) pull in
  different directions, so the query is also split on ';' and each part is searched on its own.
- A document-level signal (keyword and dense matches aggregated per document, plus the opening chunks where a
  document names itself and its parties) ranks documents; the best few are then searched again on their own,
  so the right passage of the right document is found even when a distractor has a closer-sounding clause.
- Everything is fused by reciprocal rank (scores of different kinds are not comparable, ranks are).
- The vector store and the keyword index are both derived data: a hit counts only if the Chunk row exists, its
  document is READY, the vector's version is the document's current one and the collection is readable now.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from django.db import connection

from docs_app import registry
from docs_app.models import Chunk, DocumentStatus
from docs_app.services.access import collections_readable

if TYPE_CHECKING:
    from docs_app.services.access import AnyUser


@dataclass(frozen=True)
class RetrievalOptions:
    """The tunable knobs; the defaults are what bench/retrieval.py measured best (see its docstring)."""

    hybrid: bool = True  # False: dense only (the benchmark's baseline)
    candidates: int = 50  # per ranked list
    rrf_k: int = 60
    split_parts: bool = True  # also search each ';' part of the question on its own
    route_documents: int = 3  # search the best N documents again on their own (0: off)
    document_weight: float = 1.0  # weight of the document ranking in the fused chunk score
    head_chunks: int = 3  # a document's first chunks name it and its parties: the routing text


DENSE_ONLY = RetrievalOptions(hybrid=False, split_parts=False, route_documents=0, document_weight=0.0)


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: int
    document_id: int
    collection_id: int
    title: str
    page: int
    ordinal: int
    char_start: int
    char_end: int
    text: str
    score: float  # fused reciprocal-rank score: only meaningful for ordering
    similarity: float  # cosine similarity of the chunk to the whole question: the abstention signal


# Common English function words: they match nearly every passage, so as OR terms they only add noise.
_STOP_WORDS_TEXT = (
    "a about above after again against all am an and any are as at be because been before being below "
    "between both but by can could did do does doing down during each few for from further had has "
    "have having he her here hers herself him himself his how i if in into is it its itself just me "
    "more most my myself no nor not now of off on once only or other our ours ourselves out over own "
    "same she should so some such than that the their theirs them themselves then there these they "
    "this those through to too under until up very was we were what when where which while who whom "
    "why will with would you your yours yourself yourselves shall may might must"
)
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 48


def keyword_terms(text: str) -> list[str]:
    """Distinct lower-cased word terms of the text, stop-words dropped, in order of first appearance."""
    terms: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit()):
            terms.setdefault(word, None)
    return list(terms)[:_MAX_TERMS]


def fts5_query(text: str) -> str:
    """An FTS5 MATCH expression that ORs the text's terms. Each term is a quoted string, so no character a
    user types (quotes, '*', '-', ':', NEAR, parentheses) can be read as FTS5 syntax. Empty: nothing left."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in keyword_terms(text))


def query_parts(query: str) -> list[str]:
    """The non-trivial ';'-separated parts of a question (empty when there is only one part)."""
    parts = [part.strip() for part in query.split(";")]
    parts = [part for part in parts if keyword_terms(part)]
    return parts if len(parts) > 1 else []


def rrf_fuse(rankings: Iterable[tuple[float, Sequence[int]]], *, k: int) -> dict[int, float]:
    """Reciprocal-rank fusion: each ranked list adds weight / (k + rank) to its items (rank from 1)."""
    scores: dict[int, float] = defaultdict(float)
    for weight, ranked in rankings:
        for rank, item in enumerate(ranked, start=1):
            scores[item] += weight / (k + rank)
    return dict(scores)


def allowed_collection_ids(*, user: AnyUser, collection_ids: Iterable[int] | None = None) -> list[int]:
    """What the user may read now, narrowed to the requested ids: requested ids are a wish, never a grant."""
    readable = set(collections_readable(user).values_list("id", flat=True))
    if collection_ids is not None:
        readable &= {int(c) for c in collection_ids}
    return sorted(readable)


def chunks_retrieve(
    *,
    user: AnyUser,
    query: str,
    collection_ids: Iterable[int] | None = None,
    k: int = 8,
    options: RetrievalOptions | None = None,
) -> list[RetrievedChunk]:
    """The k best passages for the question among the collections the user may read (None: all of them)."""
    options = options or RetrievalOptions()
    allowed = allowed_collection_ids(user=user, collection_ids=collection_ids)
    if not allowed or not query.strip() or k <= 0:
        return []
    parts = query_parts(query) if options.split_parts else []
    texts = [query, *parts]
    vectors = registry.embedder().embed(texts)

    rankings: list[tuple[float, list[int]]] = []
    document_rankings: list[tuple[float, list[int]]] = []
    for text, vector in zip(texts, vectors, strict=True):
        dense = _dense_ranked(vector, collection_ids=allowed, limit=options.candidates)
        rankings.append((1.0, dense))
        if options.hybrid:
            keyword = _keyword_ranked(text, collection_ids=allowed, limit=options.candidates)
            rankings.append((1.0, keyword))
            document_rankings.append((1.0, _keyword_ranked_documents(
                text, collection_ids=allowed, head_chunks=options.head_chunks, limit=options.candidates)))
    document_score: dict[int, float] = {}
    if options.document_weight > 0 or options.route_documents > 0:
        owners = _chunk_documents({c for _, ranked in rankings for c in ranked})
        document_rankings += [(1.0, _documents_of(ranked, owners)) for _, ranked in rankings]
        document_score = rrf_fuse(document_rankings, k=options.rrf_k)
    if options.route_documents > 0 and document_score:
        best_first = sorted(document_score, key=document_score.__getitem__, reverse=True)
        routed = best_first[: options.route_documents]
        for text, vector in zip(texts, vectors, strict=True):
            rankings.append((1.0, _dense_ranked(vector, collection_ids=allowed, limit=options.candidates,
                                                document_ids=routed)))
            rankings.append((1.0, _keyword_ranked(text, collection_ids=allowed, limit=options.candidates,
                                                  document_ids=routed)))

    scores = rrf_fuse(rankings, k=options.rrf_k)
    if options.document_weight > 0 and document_score:
        document_rank = {d: r for r, d in enumerate(
            sorted(document_score, key=document_score.__getitem__, reverse=True), start=1)}
        owners = _chunk_documents(set(scores))
        for chunk_id in scores:
            rank = document_rank.get(owners.get(chunk_id, -1))
            if rank is not None:
                scores[chunk_id] += options.document_weight / (options.rrf_k + rank)
    ordered = sorted(scores, key=lambda c: (-scores[c], c))
    return _recheck(user=user, allowed=allowed, ordered=ordered, scores=scores, query_vector=vectors[0], k=k)


# --- the dense side -----------------------------------------------------------------------------------------

def _dense_ranked(vector: npt.NDArray[np.float32], *, collection_ids: list[int], limit: int,
                  document_ids: list[int] | None = None) -> list[int]:
    """Chunk ids of the nearest vectors, best first. A vector id names (document, version, ordinal); ids whose
    version is not the document's current one, or whose row is gone, are stale and dropped here."""
    hits = registry.vector_store().query(embedding=vector, k=limit, collection_ids=collection_ids,
                                         document_ids=document_ids)
    keys: list[tuple[int, int, int]] = []
    for hit in hits:
        try:
            document_id, version, ordinal = (int(part) for part in hit.vector_id.split(":"))
        except ValueError:
            continue
        keys.append((document_id, version, ordinal))
    if not keys:
        return []
    rows = Chunk.objects.filter(
        document_id__in={d for d, _, _ in keys}, ordinal__in={o for _, _, o in keys},
        document__status=DocumentStatus.READY, document__collection_id__in=collection_ids,
    ).values_list("id", "document_id", "ordinal", "document__version")
    current = {(d, v, o): chunk_id for chunk_id, d, o, v in rows}
    return [current[key] for key in keys if key in current]


# --- the keyword side ---------------------------------------------------------------------------------------

def _keyword_ranked(text: str, *, collection_ids: list[int], limit: int,
                    document_ids: list[int] | None = None) -> list[int]:
    """Chunk ids ranked by BM25 (SQLite FTS5) or ts_rank_cd (PostgreSQL), READY documents of the given
    collections only."""
    rows = _keyword_rows(text, collection_ids=collection_ids, limit=limit, document_ids=document_ids)
    return [chunk_id for chunk_id, _ in rows]


def _keyword_ranked_documents(text: str, *, collection_ids: list[int], head_chunks: int,
                              limit: int) -> list[int]:
    """Documents ranked by how well their opening chunks (title block, parties, recitals) match the text."""
    if head_chunks <= 0:
        return []
    rows = _keyword_rows(text, collection_ids=collection_ids, limit=limit, head_chunks=head_chunks)
    return list(dict.fromkeys(document_id for _, document_id in rows))


def _keyword_rows(text: str, *, collection_ids: list[int], limit: int, document_ids: list[int] | None = None,
                  head_chunks: int = 0) -> list[tuple[int, int]]:
    if not collection_ids or (document_ids is not None and not document_ids):
        return []
    params: list[Any] = []
    where = ["d.status = %s", f"d.collection_id IN ({', '.join(['%s'] * len(collection_ids))})"]
    params += [DocumentStatus.READY.value, *collection_ids]
    if document_ids is not None:
        where.append(f"d.id IN ({', '.join(['%s'] * len(document_ids))})")
        params += document_ids
    if head_chunks > 0:
        where.append("c.ordinal < %s")
        params.append(head_chunks)
    if connection.vendor == "postgresql":
        terms = keyword_terms(text)
        if not terms:
            return []
        # Terms are \w+ runs, so joined with '|' they are a well-formed tsquery (OR), whatever the user typed.
        # Only fixed fragments and %s placeholders are joined into the SQL; every value is a parameter.
        sql = (
            "SELECT c.id, c.document_id FROM docs_app_chunk c JOIN docs_app_document d "  # noqa: S608
            "ON d.id = c.document_id, to_tsquery('english', %s) q "
            "WHERE to_tsvector('english', c.text) @@ q AND " + " AND ".join(where)
            + " ORDER BY ts_rank_cd(to_tsvector('english', c.text), q) DESC, c.id LIMIT %s"
        )
        params = [" | ".join(terms), *params, limit]
    else:
        match = fts5_query(text)
        if not match:
            return []
        sql = (
            "SELECT c.id, c.document_id FROM docs_app_chunk_fts f JOIN docs_app_chunk c ON c.id = f.rowid "  # noqa: S608
            "JOIN docs_app_document d ON d.id = c.document_id WHERE docs_app_chunk_fts MATCH %s AND "
            + " AND ".join(where) + " ORDER BY bm25(docs_app_chunk_fts), c.id LIMIT %s"
        )
        params = [match, *params, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(chunk_id), int(document_id)) for chunk_id, document_id in cursor.fetchall()]


# --- fusion helpers and the final re-check ------------------------------------------------------------------

def _chunk_documents(chunk_ids: set[int]) -> dict[int, int]:
    if not chunk_ids:
        return {}
    return dict(Chunk.objects.filter(id__in=chunk_ids).values_list("id", "document_id"))


def _documents_of(ranked_chunks: Sequence[int], owners: dict[int, int]) -> list[int]:
    """A chunk ranking read as a document ranking: each document at the rank of its best chunk."""
    return list(dict.fromkeys(owners[c] for c in ranked_chunks if c in owners))


def _recheck(*, user: AnyUser, allowed: list[int], ordered: list[int], scores: dict[int, float],
             query_vector: npt.NDArray[np.float32], k: int) -> list[RetrievedChunk]:
    """Load the best candidates again from the DB with every condition a shown passage must meet, now."""
    readable_now = set(collections_readable(user).filter(id__in=allowed).values_list("id", flat=True))
    candidates = ordered[: k * 4]
    rows = {
        chunk.pk: chunk
        for chunk in Chunk.objects.filter(
            id__in=candidates, document__status=DocumentStatus.READY,
            document__collection_id__in=readable_now,
        ).select_related("document")
    }
    results: list[RetrievedChunk] = []
    for chunk_id in candidates:
        chunk = rows.get(chunk_id)
        if chunk is None:
            continue
        embedding = np.frombuffer(bytes(chunk.embedding), dtype=np.float32)
        similarity = float(embedding @ query_vector) if embedding.shape == query_vector.shape else 0.0
        results.append(RetrievedChunk(
            chunk_id=chunk.pk, document_id=chunk.document_id, collection_id=chunk.document.collection_id,
            title=chunk.document.title, page=chunk.page, ordinal=chunk.ordinal, char_start=chunk.char_start,
            char_end=chunk.char_end, text=chunk.text, score=scores[chunk_id], similarity=similarity,
        ))
        if len(results) == k:
            break
    return results
