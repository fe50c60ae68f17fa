"""The keyword side of retrieval on SQLite FTS5: which passages match a question's terms, best BM25 first,
among the passages a reader may see.

Query shape, and why (bench/scale.py): the index holds each chunk's scope words beside its text
(docs_app.models.chunk_keyword_scope: "c<collection> d<document>", "o<ordinal>" for a document's first chunks).
The MATCH names the readable collections (or the routed documents, or the head ordinals) as scope words, so
FTS5 intersects posting lists and computes BM25 only for passages the reader may see, in the index, before
SQLite joins anything. Filtering after ranking, as the first version did, made FTS5 rank every match in the firm:
at 100k chunks a reader of one collection in a hundred paid as much as a reader of all of them.

Terms match a passage's text and its section heading (a third column: "22 Jurisdiction and Choice of Law" says
what the clause under it is about in words the clause rarely repeats; migration 0015). Ranking is BM25 over those
two, weighed alike (the scope column's weight is 0). The candidate list is cut inside the index; the outer query
only checks the document is READY and in a readable collection (defence in depth: the caller re-checks every
passage against the database before anyone sees it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from django.conf import settings
from django.db import connection

from docs_app.models import SCOPE_HEAD_CHUNKS, Collection, Document, DocumentStatus

# Candidates fetched from the index per passage wanted: the outer filters (READY, readable) rarely drop any.
_OVERFETCH = 2
# Only used to estimate how many head chunks a query scores (the CUAD contracts average about 90 chunks).
_AVERAGE_CHUNKS_PER_DOCUMENT = 50
_TOKENIZER = "porter unicode61 remove_diacritics 2"  # the keyword index's, see migrations 0002 and 0005


# Term counts and readers' shares are estimates that steer the query shape, never a permission: they are kept
# for a minute per process, so a question's dozen index queries do not each ask again.
_ESTIMATES_TTL_S = 60.0
_ESTIMATES_MAX = 50_000
_term_rows_seen: dict[str, tuple[float, int]] = {}
_shares_seen: dict[tuple[int, ...], tuple[float, float]] = {}


def estimates_forget() -> None:
    """Drop the remembered term counts and shares (tests that rebuild the corpus call it)."""
    _term_rows_seen.clear()
    _shares_seen.clear()


def term_rows(terms: Sequence[str]) -> dict[str, int]:
    """How many passages in the index hold each term (after the index's own stemming: "terminated" counts
    as "termin"), read from FTS5's vocabulary: one lookup per term, whatever the corpus size."""
    now = time.monotonic()
    known = {t: seen[1] for t in terms if (seen := _term_rows_seen.get(t)) and now - seen[0] < _ESTIMATES_TTL_S}
    missing = [t for t in dict.fromkeys(terms) if t not in known]
    if missing:
        if len(_term_rows_seen) > _ESTIMATES_MAX:
            _term_rows_seen.clear()
        for term, rows in _term_rows_read(missing).items():
            _term_rows_seen[term] = (now, rows)
            known[term] = rows
    return {t: known[t] for t in terms}


def _term_rows_read(terms: Sequence[str]) -> dict[str, int]:
    with connection.cursor() as cursor:
        # Per connection, in its temporary schema: nothing is written to the database file.
        cursor.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docs_query_terms USING "
                       f"fts5(term, tokenize='{_TOKENIZER}')")
        cursor.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docs_query_stems USING "
                       "fts5vocab(temp, docs_query_terms, 'instance')")
        cursor.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.docs_chunk_vocabulary USING "
                       "fts5vocab(main, docs_app_chunk_fts, 'row')")
        cursor.execute("DELETE FROM temp.docs_query_terms")
        cursor.executemany("INSERT INTO temp.docs_query_terms(rowid, term) VALUES (%s, %s)",
                           list(enumerate(terms)))
        cursor.execute("SELECT doc, term FROM temp.docs_query_stems")
        stems: dict[int, set[str]] = {}
        for number, stem in cursor.fetchall():
            stems.setdefault(int(number), set()).add(str(stem))
        every_stem = sorted({stem for found in stems.values() for stem in found})
        rows: dict[str, int] = {}
        if every_stem:
            cursor.execute("SELECT term, doc FROM temp.docs_chunk_vocabulary "  # noqa: S608 - placeholders only
                           f"WHERE term IN ({', '.join(['%s'] * len(every_stem))})", every_stem)
            rows = {str(term): int(doc) for term, doc in cursor.fetchall()}
    return {term: max((rows.get(stem, 0) for stem in stems.get(i, ())), default=0) for i, term in enumerate(terms)}


def terms_within_budget(terms: Sequence[str], rows: dict[str, int], *, share: float, budget: int) -> list[str]:
    """The rarest terms whose passages, estimated as the sum of their counts times the share of the index the
    query may read, stay within `budget` (at least the rarest one), in their original order.

    FTS5 computes BM25 for every passage that matches any term before it can sort, and a common word ("agreement"
    in half of a law firm's passages) makes that most of the index: 70% of 100k chunks for a whole CUAD question.
    The words dropped here are the ones BM25 weighs least (inverse document frequency), and the dense side still
    reads the whole question. Below the budget, as on a small corpus, nothing is dropped."""
    order = sorted(range(len(terms)), key=lambda i: (rows.get(terms[i], 0), i))
    kept: set[int] = set()
    estimate = 0.0
    for i in order:
        cost = rows.get(terms[i], 0) * share
        if kept and estimate + cost > budget:
            break
        kept.add(i)
        estimate += cost
    return [term for i, term in enumerate(terms) if i in kept]


def readable_share(collection_ids: Sequence[int]) -> float:
    """The share of the READY documents that the collections hold (1.0 when they are all the collections): how
    much of an index a reader's filter lets through, which decides how the indexes are best asked. Remembered
    for a minute: it only steers the query shape, and every query still filters by the collections themselves."""
    key = tuple(sorted(set(collection_ids)))
    now = time.monotonic()
    seen = _shares_seen.get(key)
    if seen and now - seen[0] < _ESTIMATES_TTL_S:
        return seen[1]
    ready = Document.objects.filter(status=DocumentStatus.READY)
    total = ready.count()
    share = ready.filter(collection_id__in=key).count() / total if total else 1.0
    if len(_shares_seen) > _ESTIMATES_MAX:
        _shares_seen.clear()
    _shares_seen[key] = (now, share)
    return share


def fts5_phrase(term: str) -> str:
    """One term as an FTS5 string: quoted, so nothing a user types (quotes, '*', '-', ':', NEAR, parentheses)
    can be read as FTS5 syntax."""
    return '"' + term.replace('"', '""') + '"'


def fts5_scoped_match(terms: Sequence[str], *, collection_ids: Sequence[int] | None,
                      document_ids: Sequence[int] | None = None, head_chunks: int = 0) -> str:
    """The MATCH expression: any of the terms in the text or the heading, and (when given) one of the collections,
    one of the documents, one of the first `head_chunks` ordinals in the scope column. None for collection_ids:
    every collection (no collection clause to evaluate). Empty: no term left."""
    if not terms:
        return ""
    clauses = ["{text heading} : (" + " OR ".join(fts5_phrase(t) for t in terms) + ")"]
    if document_ids is not None:
        clauses.append(_scope_any("d", document_ids))
    elif collection_ids is not None:
        clauses.append(_scope_any("c", collection_ids))
    if 0 < head_chunks <= SCOPE_HEAD_CHUNKS:
        clauses.append(_scope_any("o", range(head_chunks)))
    return " AND ".join(clauses)


def _scope_any(prefix: str, ids: Sequence[int] | range) -> str:
    return "keyword_scope : (" + " OR ".join(f'"{prefix}{int(i)}"' for i in ids) + ")"


def fts5_rows(terms: Sequence[str], *, collection_ids: Sequence[int], limit: int,
              document_ids: Sequence[int] | None = None, head_chunks: int = 0) -> list[tuple[int, int]]:
    """(chunk id, document id) of the best-matching passages, best first, at most `limit`."""
    if not terms or not collection_ids or limit <= 0 or (document_ids is not None and not document_ids):
        return []
    # A reader of every collection needs no collection clause: it would only make FTS5 merge every posting list.
    every = len(set(collection_ids)) >= Collection.objects.count()
    if document_ids is None and settings.KEYWORD_MAX_SCORED > 0:
        share = 1.0 if every else readable_share(collection_ids)
        if head_chunks > 0:
            share *= min(1.0, head_chunks / _AVERAGE_CHUNKS_PER_DOCUMENT)
        terms = terms_within_budget(terms, term_rows(terms), share=share, budget=settings.KEYWORD_MAX_SCORED)
    match = fts5_scoped_match(terms, collection_ids=None if every else collection_ids, document_ids=document_ids,
                              head_chunks=head_chunks)
    where = ["d.status = %s", f"d.collection_id IN ({', '.join(['%s'] * len(collection_ids))})"]
    params: list[str | int] = [match, limit * _OVERFETCH, DocumentStatus.READY.value, *collection_ids]
    if document_ids is not None:
        where.append(f"d.id IN ({', '.join(['%s'] * len(document_ids))})")
        params += list(document_ids)
    if head_chunks > SCOPE_HEAD_CHUNKS:
        where.append("c.ordinal < %s")
        params.append(head_chunks)
    # Only fixed fragments and %s placeholders are joined into the SQL; every value is a parameter.
    sql = (
        "SELECT c.id, c.document_id FROM (SELECT rowid AS id, bm25(docs_app_chunk_fts, 1.0, 0.0, 1.0) AS score "  # noqa: S608
        "FROM docs_app_chunk_fts WHERE docs_app_chunk_fts MATCH %s ORDER BY score, rowid LIMIT %s) f "
        "JOIN docs_app_chunk c ON c.id = f.id JOIN docs_app_document d ON d.id = c.document_id "
        "WHERE " + " AND ".join(where) + " ORDER BY f.score, c.id LIMIT %s"
    )
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(chunk_id), int(document_id)) for chunk_id, document_id in cursor.fetchall()]


# --- Counting passages and documents that hold a word or phrase ---------------------------------------------------
#
# Document-aware ranking asks, for each word of a question, in how many of the scope's documents and passages it
# occurs (pipeline.ranking: specificity, topicality). Counted by joining the index's matches to the chunk and
# document tables, a common word cost ~120 ms at 100k chunks ("agreement" is in half of a law firm's passages) and a
# question about ten (bench/scale.py: 280 of a 550 ms question). FTS5 lists a word's passages in about a millisecond;
# what is slow is finding each passage's document. So each process keeps the chunk -> document map as an array
# (4 bytes per chunk id) and counts there.

class _ChunkOwners:
    """chunk id -> document id, for every chunk ever seen by this process, read incrementally. Chunk ids are never
    reused (AUTOINCREMENT), so an entry never changes; a deleted chunk's entry stays, but its passages have left
    the keyword index, so nothing looks it up. A database whose id counter went backwards (replaced by a restore)
    is read again from the start. The counts it feeds steer ranking only; permissions are checked elsewhere."""

    def __init__(self) -> None:
        self.owner = np.zeros(0, dtype=np.int32)
        self.max_id = 0
        self.database = ""
        self._lock = threading.Lock()  # web processes serve requests on threads

    def current(self) -> npt.NDArray[np.int32]:
        with self._lock, connection.cursor() as cursor:
            cursor.execute("SELECT seq FROM sqlite_sequence WHERE name = 'docs_app_chunk'")
            row = cursor.fetchone()
            high_water = int(row[0]) if row else 0
            database = str(connection.settings_dict["NAME"])
            if database != self.database or high_water < self.max_id:
                self.owner, self.max_id, self.database = np.zeros(0, dtype=np.int32), 0, database
            if high_water > self.max_id:
                cursor.execute("SELECT id, document_id FROM docs_app_chunk WHERE id > %s", [self.max_id])
                rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
                if len(rows):
                    grown = np.zeros(int(rows[:, 0].max()) + 1, dtype=np.int32)
                    grown[: len(self.owner)] = self.owner
                    grown[rows[:, 0]] = rows[:, 1]
                    self.owner = grown
                self.max_id = high_water
        return self.owner


_chunk_owners = _ChunkOwners()


@dataclass(frozen=True)
class Occurrence:
    passages: int  # chunks of the scope that hold it
    documents: int  # documents of the scope that hold it


def occurrences(units: Sequence[Sequence[str]], *, documents: Sequence[int],
                collection_ids: Sequence[int] | None = None) -> list[Occurrence]:
    """For each unit (a word, or words as a phrase, in the text column), how many of the given documents' chunks,
    and how many of those documents, hold it. `collection_ids` (the documents' collections, None: unknown or all)
    lets FTS5 narrow the matches in the index when the documents are a small part of it."""
    if not units or not documents:
        return [Occurrence(0, 0) for _ in units]
    owner = _chunk_owners.current()
    in_scope = np.zeros(max(int(max(documents)), int(owner.max(initial=0))) + 1, dtype=bool)
    in_scope[np.asarray(documents, dtype=np.int64)] = True
    narrow = ""
    if len(documents) <= _NARROW_BY_DOCUMENT:
        narrow = " AND " + _scope_any("d", documents)
    elif collection_ids is not None and readable_share(collection_ids) < _NARROW_BY_COLLECTION_SHARE:
        narrow = " AND " + _scope_any("c", collection_ids)
    found = []
    with connection.cursor() as cursor:
        for words in units:
            if not words:
                found.append(Occurrence(0, 0))
                continue
            # One string of ids, parsed by numpy: a row per passage costs three times as much for a common word.
            cursor.execute("SELECT group_concat(rowid, ' ') FROM docs_app_chunk_fts WHERE docs_app_chunk_fts MATCH %s",
                           ["text : " + fts5_phrase(" ".join(words)) + narrow])
            listed = cursor.fetchone()[0]
            rowids = np.fromstring(listed, dtype=np.int64, sep=" ") if listed else np.zeros(0, dtype=np.int64)
            rowids = rowids[rowids < len(owner)]  # chunks written after the map was read: not counted
            owners = owner[rowids]
            owners = owners[in_scope[owners]]
            found.append(Occurrence(passages=len(owners), documents=len(np.unique(owners))))
    return found


# A scope of this many documents is named in the MATCH (FTS5 intersects posting lists); a wider one by its
# collections when they hold less than this share of the documents; otherwise every match is read and filtered.
_NARROW_BY_DOCUMENT = 50
_NARROW_BY_COLLECTION_SHARE = 0.3
