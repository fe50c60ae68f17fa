"""Hybrid retrieval over the collections a person may read: dense (vector store) + keyword (DB full text),
fused by reciprocal rank, every hit re-checked against the DB before anyone sees it.

The shape of the method, and why (figures from bench/retrieval.py, CUAD dev set, 60 documents, hit@5):
- Questions often set the scene first and then ask ("Consider the <contract>; <question>"). Words that pick the
  document (party names) and words that pick the passage (the clause topic) pull in different directions: the
  whole question ranks the contract's preamble first. So the query is split on ';': documents are ranked by
  the whole query and the scene-setting parts, passages by the asking part (0.21 -> 0.51).
- Documents are ranked by keyword match of their opening chunks (where a document names itself and its
  parties) fused with dense and keyword passage matches read per document; passages are then ranked again
  inside the best two documents, and a passage's score adds its document's rank, sharply (the first document
  must stand clearly above the second): 0.51 -> 0.75. The document ranking put the gold contract first for
  all 94 dev questions; what remains is finding the clause inside it. Questions with no scene-setting part
  are not routed (PubMedQA, 1000 questions: 0.985 routed, 0.993 not).
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
from docs_app.models import Chunk, DocumentStatus, chunk_vector_key
from docs_app.selectors.keywords import fts5_phrase, fts5_rows, readable_share
from docs_app.services.access import collections_readable

if TYPE_CHECKING:
    from docs_app.services.actor import AnyUser


@dataclass(frozen=True)
class RetrievalOptions:
    """The tunable knobs. The defaults are the plainest setting among those that measured best; variations
    within a few questions of each other (RRF k 10 vs 60, 1-3 routed documents, 0-5 head chunks, keyword
    weight 0.5-1) were treated as ties, not tuned further to the dev questions."""

    hybrid: bool = True  # False: dense only over the whole question (the benchmark's baseline)
    candidates: int = 50  # per ranked list
    rrf_k: int = 60  # for passage rankings
    split_parts: bool = True  # passages are ranked by the question part(s), documents by the whole query
    route_documents: int = 2  # rank passages again inside the best N documents (0: off)
    document_weight: float = 1.0  # weight of the document ranking in a passage's score
    document_rrf_k: int = 1  # small: the first document must stand clearly above the second
    keyword_weight: float = 1.0  # keyword rankings' weight relative to dense ones
    global_weight: float = 0.3  # weight of the passage rankings over all documents (vs. the routed ones)
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
    similarity: float  # cosine similarity of the chunk to what is asked: the abstention signal


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
    return " OR ".join(fts5_phrase(term) for term in keyword_terms(text))


def query_parts(query: str) -> list[str]:
    """The non-trivial ';'-separated parts of a question (empty when there is only one part)."""
    parts = [part.strip() for part in query.split(";")]
    parts = [part for part in parts if keyword_terms(part)]
    return parts if len(parts) > 1 else []


def followup_query(*, previous: str | None, current: str) -> str:
    """What to retrieve for a question asked inside a conversation. A follow-up ("and who may terminate it?")
    often names nothing: the previous question sets the scene. Put it first as a scene-setting part, without its
    question marks, so documents are ranked with it and passages by the follow-up itself (see query_parts)."""
    if not previous:
        return current
    return f"{previous.replace('?', ' ').replace(';', ',').strip()}; {current}"


def question_parts(parts: Sequence[str]) -> list[str]:
    """Of a split query, the parts that ask (they carry a '?'), else the last one: people set the scene first
    ("Consider the lease of unit 4; who pays for repairs?") and ask last."""
    asking = [part for part in parts if "?" in part]
    return asking or [parts[-1]]


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
    asking = question_parts(parts) if parts else [query]
    texts = list(dict.fromkeys([query, *parts, *asking]))
    vectors = dict(zip(texts, registry.embedder().embed(texts), strict=True))

    passage_rankings: list[tuple[float, list[int]]] = []
    for text in asking:
        weight = options.global_weight if options.hybrid else 1.0
        passage_rankings += _passage_rankings(text, vectors[text], allowed=allowed, options=options,
                                              weight=weight)
    scores = rrf_fuse(passage_rankings, k=options.rrf_k)
    # Documents are routed only when the question sets a scene apart from what it asks: that part names the
    # document. A question that only asks (most PubMedQA questions are an article's title) is best served by
    # the plain fused passage rankings: routing it measured 0.985 hit@5 there against 0.993 without.
    if options.hybrid and parts and (options.document_weight > 0 or options.route_documents > 0):
        # The parts that set the scene name the document; the asking part would pull towards whichever
        # documents share its topic.
        naming = [text for text in texts if text not in asking or text == query]
        ranked_documents = _documents_ranked(naming, vectors=vectors, allowed=allowed, options=options)
        routed = ranked_documents[: options.route_documents]
        for text in asking if routed else []:
            passage_rankings += _passage_rankings(text, vectors[text], allowed=allowed, options=options,
                                                  weight=1.0, document_ids=routed)
        scores = rrf_fuse(passage_rankings, k=options.rrf_k)
        document_rank = {d: r for r, d in enumerate(ranked_documents, start=1)}
        owners = _chunk_documents(set(scores))
        for chunk_id in scores:
            rank = document_rank.get(owners.get(chunk_id, -1))
            if rank is not None:
                scores[chunk_id] += options.document_weight / (options.document_rrf_k + rank)
    ordered = sorted(scores, key=lambda c: (-scores[c], c))
    return _recheck(user=user, allowed=allowed, ordered=ordered, scores=scores,
                    question_vectors=np.stack([vectors[text] for text in asking]), k=k)


def _passage_rankings(text: str, vector: npt.NDArray[np.float32], *, allowed: list[int],
                      options: RetrievalOptions, weight: float,
                      document_ids: list[int] | None = None) -> list[tuple[float, list[int]]]:
    rankings = [(weight, _dense_ranked(vector, collection_ids=allowed, limit=options.candidates,
                                       document_ids=document_ids))]
    if options.hybrid:
        rankings.append((weight * options.keyword_weight, _keyword_ranked(
            text, collection_ids=allowed, limit=options.candidates, document_ids=document_ids)))
    return rankings


# --- the dense side -----------------------------------------------------------------------------------------

def _dense_ranked(vector: npt.NDArray[np.float32], *, collection_ids: list[int], limit: int,
                  document_ids: list[int] | None = None) -> list[int]:
    """Chunk ids of the nearest vectors, best first. A vector id names (document, version, ordinal); ids whose
    version is not the document's current one, or whose row is gone, are stale and dropped here."""
    hits = registry.vector_store().query(embedding=vector, k=limit, collection_ids=collection_ids,
                                         document_ids=document_ids, readable_share=readable_share(collection_ids))
    keys = [key for key in (chunk_vector_key(hit.vector_id) for hit in hits) if key is not None]
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
    if connection.vendor != "postgresql":
        return fts5_rows(keyword_terms(text), collection_ids=collection_ids, limit=limit, document_ids=document_ids,
                         head_chunks=head_chunks)
    terms = keyword_terms(text)
    if not terms:
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
    # Terms are \w+ runs, so joined with '|' they are a well-formed tsquery (OR), whatever the user typed.
    # Only fixed fragments and %s placeholders are joined into the SQL; every value is a parameter.
    sql = (
        "SELECT c.id, c.document_id FROM docs_app_chunk c JOIN docs_app_document d "  # noqa: S608
        "ON d.id = c.document_id, to_tsquery('english', %s) q "
        "WHERE to_tsvector('english', c.text) @@ q AND " + " AND ".join(where)
        + " ORDER BY ts_rank_cd(to_tsvector('english', c.text), q) DESC, c.id LIMIT %s"
    )
    params = [" | ".join(terms), *params, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(chunk_id), int(document_id)) for chunk_id, document_id in cursor.fetchall()]


# --- documents ----------------------------------------------------------------------------------------------

def _documents_ranked(texts: list[str], *, vectors: dict[str, npt.NDArray[np.float32]], allowed: list[int],
                      options: RetrievalOptions) -> list[int]:
    """Documents best first, by the whole query and each part: keyword match of their opening chunks, and
    dense and keyword passage matches read as document rankings."""
    rankings: list[tuple[float, list[int]]] = []
    chunk_rankings: list[list[int]] = []
    for text in texts:
        rankings.append((1.0, _keyword_ranked_documents(text, collection_ids=allowed,
                                                        head_chunks=options.head_chunks,
                                                        limit=options.candidates)))
        chunk_rankings.append(_dense_ranked(vectors[text], collection_ids=allowed, limit=options.candidates))
        chunk_rankings.append(_keyword_ranked(text, collection_ids=allowed, limit=options.candidates))
    owners = _chunk_documents({c for ranked in chunk_rankings for c in ranked})
    rankings += [(1.0, _documents_of(ranked, owners)) for ranked in chunk_rankings]
    scores = rrf_fuse(rankings, k=options.rrf_k)
    return sorted(scores, key=lambda d: (-scores[d], d))


# --- fusion helpers and the final re-check ------------------------------------------------------------------

def _chunk_documents(chunk_ids: set[int]) -> dict[int, int]:
    if not chunk_ids:
        return {}
    return dict(Chunk.objects.filter(id__in=chunk_ids).values_list("id", "document_id"))


def _documents_of(ranked_chunks: Sequence[int], owners: dict[int, int]) -> list[int]:
    """A chunk ranking read as a document ranking: each document at the rank of its best chunk."""
    return list(dict.fromkeys(owners[c] for c in ranked_chunks if c in owners))


def _recheck(*, user: AnyUser, allowed: list[int], ordered: list[int], scores: dict[int, float],
             question_vectors: npt.NDArray[np.float32], k: int) -> list[RetrievedChunk]:
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
        fits = embedding.shape == question_vectors.shape[1:]
        similarity = float(np.max(question_vectors @ embedding)) if fits else 0.0
        results.append(RetrievedChunk(
            chunk_id=chunk.pk, document_id=chunk.document_id, collection_id=chunk.document.collection_id,
            title=chunk.document.title, page=chunk.page, ordinal=chunk.ordinal, char_start=chunk.char_start,
            char_end=chunk.char_end, text=chunk.text, score=scores[chunk_id], similarity=similarity,
        ))
        if len(results) == k:
            break
    return results
