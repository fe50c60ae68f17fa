"""Retrieval over what a person may read: the document-aware hybrid method of pipeline.ranking on the DB keyword
indexes (chunk text; document names) and the vector store, every hit re-checked against the DB before anyone
sees it.

Scope: the collections a person may read, narrowed to those chosen, and to chosen documents when a question is
asked about a few of them ("ask this document"). Requested ids are a wish, never a grant.

Why the method has its shape (bench/retrieval.py, CUAD dev questions in six phrasings, 60 contracts, hit@5): the
old rule routed to documents only when a question set a scene before a ';', so the same questions typed as
people type them scored 0.34 on held-out questions. The documents a question names are now found from their
metadata whatever the phrasing (pipeline.mentions), passages are ranked inside them by what is asked
(pipeline.ranking), and a question that names none is not routed at all. Figures: README.

The vector store and the keyword indexes are derived data: a hit counts only if the Chunk row exists, its
document is READY, the vector's version is the document's current one and the collection is readable now.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import connection

from docs_app import registry
from docs_app.models import Chunk, Document, DocumentStatus, chunk_vector_key
from docs_app.pipeline.mentions import DocumentNames, document_names
from docs_app.pipeline.metadata import DocumentMetadata
from docs_app.pipeline.ranking import (
    DENSE_ONLY,
    RankingOptions,
    fts5_query,
    names_absent,
    passages_rank,
)
from docs_app.selectors.keywords import Occurrence, fts5_rows, occurrences, readable_share
from docs_app.services.access import collections_readable, documents_readable

if TYPE_CHECKING:
    from docs_app.services.actor import AnyUser

__all__ = ["DENSE_ONLY", "RankingOptions", "RetrievedChunk", "allowed_collection_ids", "allowed_document_ids",
           "chunks_retrieve"]


# What the keyword side matches on PostgreSQL: a passage's section heading and its text, as FTS5's `{text heading}`
# does on SQLite (selectors.keywords); the GIN index of migration 0015 is on exactly this expression.
PASSAGE_TSVECTOR = "to_tsvector('english', c.heading || ' ' || c.text)"


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
    similarity: float  # cosine similarity to the question or what it asks (the better): the abstention signal
    heading: str = ""


def allowed_collection_ids(*, user: AnyUser, collection_ids: Iterable[int] | None = None) -> list[int]:
    """What the user may read now, narrowed to the requested ids: requested ids are a wish, never a grant."""
    readable = set(collections_readable(user).values_list("id", flat=True))
    if collection_ids is not None:
        readable &= {int(c) for c in collection_ids}
    return sorted(readable)


def allowed_document_ids(*, user: AnyUser, document_ids: Iterable[int],
                         collection_ids: Iterable[int] | None = None) -> list[int]:
    """The requested documents the user may read now (within the requested collections, if any)."""
    readable = documents_readable(user).filter(id__in={int(d) for d in document_ids})
    if collection_ids is not None:
        readable = readable.filter(collection_id__in=list(collection_ids))
    return sorted(readable.values_list("id", flat=True))


def chunks_retrieve(
    *,
    user: AnyUser,
    query: str,
    collection_ids: Iterable[int] | None = None,
    document_ids: Iterable[int] | None = None,
    previous: str | None = None,
    k: int = 8,
    options: RankingOptions | None = None,
) -> list[RetrievedChunk]:
    """The k best passages for the question among what the user may read: the chosen collections (None: all
    readable), narrowed to the chosen documents (None: all of them). `previous` is the question asked before
    it in the same conversation: a follow-up that names no document is asked about the ones it named."""
    options = options or RankingOptions()
    index = _scope_index(user=user, collection_ids=collection_ids, document_ids=document_ids)
    if index is None or not query.strip() or k <= 0:
        return []
    embedder = registry.embedder()
    ranking = passages_rank(query, index=index, embed=embedder.embed, options=options, previous=previous)
    return _recheck(user=user, allowed=index.collection_ids, document_ids=index.document_ids,
                    ordered=ranking.ordered, scores=ranking.scores, question_vectors=np.stack(ranking.vectors), k=k)


def names_absent_from_scope(*, user: AnyUser, query: str, collection_ids: Iterable[int] | None = None,
                            document_ids: Iterable[int] | None = None) -> list[str]:
    """The names the question uses that no passage the user may search here holds (pipeline.ranking.names_absent)."""
    index = _scope_index(user=user, collection_ids=collection_ids, document_ids=document_ids)
    return names_absent(query, index=index) if index is not None else []


def _scope_index(*, user: AnyUser, collection_ids: Iterable[int] | None,
                 document_ids: Iterable[int] | None) -> ScopeIndex | None:
    """What the user may search now within the requested collections and documents; None: nothing."""
    allowed = allowed_collection_ids(user=user, collection_ids=collection_ids)
    if not allowed:
        return None
    scope_documents = None
    if document_ids is not None:
        scope_documents = allowed_document_ids(user=user, document_ids=document_ids, collection_ids=allowed)
        if not scope_documents:
            return None
    return ScopeIndex(collection_ids=allowed, document_ids=scope_documents)


class ScopeIndex:
    """pipeline.ranking.SearchIndex over one scope: READY documents of the given collections (and documents).
    Keyword ranking is SQLite FTS5 BM25 (ts_rank_cd on PostgreSQL); dense ranking is the vector store."""

    def __init__(self, *, collection_ids: list[int], document_ids: list[int] | None) -> None:
        self.collection_ids = collection_ids
        self.document_ids = document_ids
        self._passages_of: dict[int, int] | None = None
        self._occurrences: dict[tuple[tuple[str, ...], tuple[int, ...] | None], Occurrence] = {}
        self._names_counted: dict[tuple[str, ...], int] = {}

    def document_count(self) -> int:
        return len(self._scope_passages())

    def _scope_passages(self) -> dict[int, int]:
        """How many passages each of the scope's READY documents holds, read once per question: the scope's
        documents, and its size, which decides how it is searched."""
        if self._passages_of is None:
            documents = Document.objects.filter(status=DocumentStatus.READY, collection_id__in=self.collection_ids)
            if self.document_ids is not None:
                documents = documents.filter(id__in=self.document_ids)
            self._passages_of = dict(documents.values_list("id", "chunk_count"))
        return self._passages_of

    def document_names(self, tokens: Sequence[str], *, limit: int, prefixes: Sequence[str] = ()) -> list[DocumentNames]:
        where, params = self._scope_sql()
        starts = _tsquery_words(prefixes)
        if connection.vendor == "postgresql":
            sql = ("SELECT d.id FROM docs_app_document d, to_tsquery('simple', %s) q "  # noqa: S608
                   "WHERE to_tsvector('simple', d.names) @@ q AND " + where
                   + " ORDER BY ts_rank_cd(to_tsvector('simple', d.names), q) DESC, d.id LIMIT %s")
            params = [" | ".join([*_tsquery_words(tokens), *(f"{start}:*" for start in starts)]), *params, limit]
        else:
            sql = ("SELECT d.id FROM docs_app_document_names_fts f JOIN docs_app_document d ON d.id = f.rowid "  # noqa: S608
                   "WHERE docs_app_document_names_fts MATCH %s AND " + where
                   + " ORDER BY bm25(docs_app_document_names_fts), d.id LIMIT %s")
            params = [" OR ".join(filter(None, [fts5_query(tokens), *(f'"{start}" *' for start in starts)])),
                      *params, limit]
        if not tokens and not starts:
            return []
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ids = [int(row[0]) for row in cursor.fetchall()]
        rows = Document.objects.filter(id__in=ids).values_list("id", "original_name", "metadata")
        found = {}
        for document_id, name, raw in rows:
            metadata = DocumentMetadata.from_dict(raw if isinstance(raw, dict) else json.loads(raw or "{}"))
            found[document_id] = DocumentNames(document_id=document_id,
                                               names=tuple(document_names(metadata, file_name=name)),
                                               effective_date=metadata.effective_date)
        return [found[i] for i in ids if i in found]

    def document_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        """In how many of the scope's documents each unit occurs, in the text or in the names: a word of file names
        ("EX", "2020", "Service") occurs in few texts but says little about which file is meant."""
        counted = self._occurring(list(units), None)
        in_names = self.names_frequency(units)
        return {unit: max(counted[unit].documents, in_names[unit]) for unit in units}

    def names_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        """For each unit, how many of the scope's documents hold it (as a phrase) in their names: one statement,
        the scope's conditions written once; remembered for the question, like `_occurring`."""
        missing = [(unit, words) for unit in dict.fromkeys(units)
                   if unit not in self._names_counted and (words := _tsquery_words(unit))]
        if missing:
            if connection.vendor == "postgresql":
                select = ("SELECT {}, COUNT(*) FROM docs_app_document d WHERE to_tsvector('simple', d.names) "
                          "@@ phraseto_tsquery('simple', %s) AND d.id IN (SELECT id FROM scope)")
                phrases = [" ".join(words) for _unit, words in missing]
            else:
                # The index's matches first, then kept if in the scope ("+rowid": not a constraint the index is
                # asked to meet). Otherwise SQLite walked the scope's documents and ran the full-text query for
                # each: 126 ms a question at 1,000 documents, against 0.6 ms.
                select = ("SELECT {}, COUNT(*) FROM docs_app_document_names_fts "
                          "WHERE docs_app_document_names_fts MATCH %s AND +rowid IN (SELECT id FROM scope)")
                phrases = ['"' + " ".join(words) + '"' for _unit, words in missing]
            where, params = self._scope_sql()
            # Only fixed fragments, positions and %s placeholders are joined into the SQL.
            sql = ("WITH scope(id) AS (SELECT d.id FROM docs_app_document d WHERE " + where + ") "  # noqa: S608
                   + " UNION ALL ".join(select.format(position) for position in range(len(missing))))
            with connection.cursor() as cursor:
                cursor.execute(sql, [*params, *phrases])
                self._names_counted.update({missing[int(position)][0]: int(count)
                                            for position, count in cursor.fetchall()})
        return {unit: self._names_counted.get(unit, 0) for unit in units}

    def dense(self, vector: npt.NDArray[np.float32], *, limit: int, document_ids: Sequence[int] | None = None,
              near: Sequence[int] = ()) -> list[int]:
        """Chunk ids of the nearest vectors, best first. A vector id names (document, version, ordinal); ids whose
        version is not the document's current one, or whose row is gone, are stale and dropped here. `near`:
        passages found relevant another way (the keyword ranking), whose documents complete the list when the
        vector store's nearest neighbours are mostly unreadable to this scope."""
        documents = self._narrowed(document_ids)
        if documents is not None and not documents:
            return []
        # A small scope (documents a question names, "ask this document", a reader of a few matters) is compared
        # with its stored vectors: Chroma's filtered search cost 65-150 ms at 100k chunks and ~290 ms at 1M
        # (bench/scale.py), while stored vectors are read and compared at ~4 µs each, exactly.
        if self._passage_count(documents) <= settings.DENSE_EXACT_MAX_PASSAGES:
            return [chunk_id for chunk_id, _ in
                    self._dense_exact(vector, limit=limit, documents=self._ready_in_scope(documents))]
        # Past that, Chroma's filter costs in proportion to what it lets through: 460-650 ms for a reader of 10% of
        # 1M chunks, ~260 ms for 3%. With `near`, any such reader's search is unfiltered: the readable neighbours
        # found are kept and the rest are the nearest passages of the documents `near` lies in, compared exactly,
        # as similar on average as what the filter finds (bench/scale.py;
        # pipeline.ranking.RankingOptions.completion_candidates). Without `near`, the filter is the fallback.
        hits = registry.vector_store().query(
            embedding=vector, k=limit, collection_ids=self.collection_ids, document_ids=documents,
            readable_share=readable_share(self.collection_ids) if documents is None else None,
            filter_when_short=not near)
        found = self._current_chunks([(hit.vector_id, hit.similarity) for hit in hits])
        if len(found) < limit and near:
            found = sorted({**dict(self._dense_exact(vector, limit=limit, documents=self._documents_of(near))),
                            **dict(found)}.items(), key=lambda pair: (-pair[1], pair[0]))
        return [chunk_id for chunk_id, _ in found[:limit]]

    def _current_chunks(self, hits: Sequence[tuple[str, float]]) -> list[tuple[int, float]]:
        """(chunk id, similarity) of the vector store's hits whose vectors are the current version of a READY
        document of the scope, in the order given."""
        keyed = [(key, similarity) for key, similarity in ((chunk_vector_key(v), s) for v, s in hits)
                 if key is not None]
        if not keyed:
            return []
        keys = [key for key, _ in keyed]
        # Looked up by key, conditions tested on the rows read: SQLite would otherwise walk every READY document.
        rows = Chunk.objects.filter(
            document_id__in={d for d, _, _ in keys}, ordinal__in={o for _, _, o in keys},
        ).values_list("id", "document_id", "ordinal", "document__version", "document__status",
                      "document__collection_id")
        readable = set(self.collection_ids)
        current = {(d, v, o): chunk_id for chunk_id, d, o, v, status, collection in rows
                   if status == DocumentStatus.READY and collection in readable}
        return [(current[key], similarity) for key, similarity in keyed if key in current]

    def _documents_of(self, chunk_ids: Sequence[int]) -> list[int]:
        """The scope's documents holding these passages, in the passages' order, as many as exact search takes."""
        owners = self.chunk_documents(chunk_ids)
        passages = self._scope_passages()
        chosen: list[int] = []
        total = 0
        for document in dict.fromkeys(owners[c] for c in chunk_ids if owners.get(c) in passages):
            total += passages[document]
            if chosen and total > settings.DENSE_EXACT_MAX_PASSAGES:
                break
            chosen.append(document)
        return chosen

    def _dense_exact(self, vector: npt.NDArray[np.float32], *, limit: int,
                     documents: Sequence[int]) -> list[tuple[int, float]]:
        """(chunk id, similarity) of the nearest passages of the documents by the vectors stored beside the
        chunks (the source the vector store is rebuilt from), all compared: exact."""
        if not documents:
            return []
        # `documents` are READY documents of the scope (_ready_in_scope), read for this question.
        rows = Chunk.objects.filter(document_id__in=list(documents)).values_list("id", "embedding")
        ids = [chunk_id for chunk_id, _ in rows]
        if not ids:
            return []
        stored = [np.frombuffer(bytes(embedding), dtype=np.float32) for _, embedding in rows]
        fitting = [i for i, row in enumerate(stored) if row.shape == vector.shape]
        if not fitting:
            return []
        similarity = np.stack([stored[i] for i in fitting]) @ vector
        best = np.argsort(-similarity, kind="stable")[:limit]
        return [(ids[fitting[int(i)]], float(similarity[i])) for i in best]

    def keyword(self, terms: Sequence[str], *, limit: int, document_ids: Sequence[int] | None = None) -> list[int]:
        """Chunk ids ranked by BM25 (SQLite FTS5) or ts_rank_cd (PostgreSQL)."""
        if not terms:
            return []
        documents = self._narrowed(document_ids)
        if connection.vendor != "postgresql":
            # FTS5 ranks only the scope's passages, inside the index (selectors.keywords).
            rows = fts5_rows(list(terms), collection_ids=self.collection_ids, limit=limit,
                             document_ids=documents)
            return [chunk_id for chunk_id, _document_id in rows]
        where, params = self._scope_sql(documents)
        # Terms are reduced to \w+ runs, so joined with '|' they are a well-formed tsquery (OR) whatever the user
        # typed. Only fixed fragments and %s placeholders are joined into the SQL.
        sql = ("SELECT c.id FROM docs_app_chunk c JOIN docs_app_document d ON d.id = c.document_id, "  # noqa: S608
               "to_tsquery('english', %s) q WHERE " + PASSAGE_TSVECTOR + " @@ q AND " + where
               + " ORDER BY ts_rank_cd(" + PASSAGE_TSVECTOR + ", q) DESC, c.id LIMIT %s")
        params = [" | ".join(_tsquery_words(terms)), *params, limit]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [int(row[0]) for row in cursor.fetchall()]

    def term_shares(self, terms: Sequence[str], *, document_ids: Sequence[int] | None) -> dict[str, float]:
        documents = self._narrowed(document_ids)
        count = self._passage_count(documents)
        if not count:
            return {}
        counted = self._occurring([(term,) for term in terms], documents)
        return {term: counted[(term,)].passages / count for term in terms}

    def chunk_documents(self, chunk_ids: Collection[int]) -> dict[int, int]:
        if not chunk_ids:
            return {}
        return dict(Chunk.objects.filter(id__in=list(chunk_ids)).values_list("id", "document_id"))

    def _ready_in_scope(self, documents: Sequence[int] | None) -> list[int]:
        """The scope's READY documents among `documents` (None: all of them)."""
        scope = self._scope_passages()
        return sorted(scope) if documents is None else sorted(scope.keys() & set(documents))

    def _passage_count(self, documents: Sequence[int] | None) -> int:
        """How many passages the scope's (or the given documents') READY documents hold."""
        passages = self._scope_passages()
        return sum(passages.values()) if documents is None else sum(passages.get(d, 0) for d in set(documents))

    def _narrowed(self, document_ids: Sequence[int] | None) -> list[int] | None:
        if document_ids is None:
            return self.document_ids
        if self.document_ids is None:
            return list(document_ids)
        return [d for d in document_ids if d in set(self.document_ids)]

    def _scope_sql(self, document_ids: Sequence[int] | None = None) -> tuple[str, list[Any]]:
        documents = self.document_ids if document_ids is None else document_ids
        where = ["d.status = %s", f"d.collection_id IN ({', '.join(['%s'] * len(self.collection_ids))})"]
        params: list[Any] = [DocumentStatus.READY.value, *self.collection_ids]
        if documents is not None:
            where.append(f"d.id IN ({', '.join(['%s'] * len(documents))})" if documents else "1 = 0")
            params += list(documents)
        return " AND ".join(where), params

    def _occurring(self, units: Sequence[tuple[str, ...]],
                   documents: Sequence[int] | None) -> dict[tuple[str, ...], Occurrence]:
        """How many of the scope's (or the given documents') passages and documents hold each unit (a word, or
        words as a phrase); remembered for the question."""
        key = None if documents is None else tuple(sorted(documents))
        missing = list(dict.fromkeys(unit for unit in units if (unit, key) not in self._occurrences))
        if missing:
            in_scope = self._ready_in_scope(key)
            words = [_tsquery_words(unit) for unit in missing]
            if connection.vendor == "postgresql":
                counted = self._pg_occurrences(words, in_scope)
            else:
                counted = occurrences(words, documents=in_scope, collection_ids=self.collection_ids)
            self._occurrences.update({(unit, key): found for unit, found in zip(missing, counted, strict=True)})
        return {unit: self._occurrences[(unit, key)] for unit in units}

    def _pg_occurrences(self, units: Sequence[list[str]], documents: Sequence[int]) -> list[Occurrence]:
        """PostgreSQL: one statement for all units (no index of word counts to read from)."""
        found = [Occurrence(0, 0) for _ in units]
        queries = [(position, words) for position, words in enumerate(units) if words]
        if not queries or not documents:
            return found
        selects: list[str] = []
        params: list[Any] = []
        for position, words in queries:
            # The documents as one array parameter: a list of placeholders per unit would pass PostgreSQL's
            # 65,535 parameters per statement for a reader of a few thousand documents.
            selects.append(f"SELECT {position}, COUNT(*), COUNT(DISTINCT c.document_id) FROM docs_app_chunk c "  # noqa: S608
                           "WHERE to_tsvector('english', c.text) @@ phraseto_tsquery('english', %s) "
                           "AND c.document_id = ANY(%s)")
            params += [" ".join(words), list(documents)]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(selects), params)
            for position, passages, distinct in cursor.fetchall():
                found[int(position)] = Occurrence(passages=int(passages or 0), documents=int(distinct or 0))
        return found


def _tsquery_words(words: Iterable[str]) -> list[str]:
    """Words reduced to their \\w runs: safe as tsquery operands and as FTS5 phrase words."""
    return [part for word in words for part in "".join(c if c.isalnum() else " " for c in word).split()]


def _recheck(*, user: AnyUser, allowed: list[int], document_ids: list[int] | None, ordered: list[int],
             scores: dict[int, float], question_vectors: npt.NDArray[np.float32], k: int) -> list[RetrievedChunk]:
    """Load the best candidates again from the DB with every condition a shown passage must meet, now."""
    readable_now = set(collections_readable(user).filter(id__in=allowed).values_list("id", flat=True))
    candidates = ordered[: k * 4]
    # Read by primary key and tested here: filtering on the document's columns in SQL let SQLite plan the query
    # from the documents side (every READY document of the readable collections: 15 ms at 100k chunks).
    rows = Chunk.objects.filter(id__in=candidates).select_related("document")
    wanted_documents = None if document_ids is None else set(document_ids)
    by_id = {chunk.pk: chunk for chunk in rows
             if chunk.document.status == DocumentStatus.READY and chunk.document.collection_id in readable_now
             and (wanted_documents is None or chunk.document_id in wanted_documents)}
    results: list[RetrievedChunk] = []
    for chunk_id in candidates:
        chunk = by_id.get(chunk_id)
        if chunk is None:
            continue
        embedding = np.frombuffer(bytes(chunk.embedding), dtype=np.float32)
        fits = embedding.shape == question_vectors.shape[1:]
        similarity = float(np.max(question_vectors @ embedding)) if fits else 0.0
        results.append(RetrievedChunk(
            chunk_id=chunk.pk, document_id=chunk.document_id, collection_id=chunk.document.collection_id,
            title=chunk.document.title, page=chunk.page, ordinal=chunk.ordinal,
            char_start=chunk.char_start, char_end=chunk.char_end, text=chunk.text, score=scores[chunk_id],
            similarity=similarity, heading=chunk.heading,
        ))
        if len(results) == k:
            break
    return results
