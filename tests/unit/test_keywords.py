"""The keyword index's query shape: scope words in the MATCH restrict ranking to what a reader may see, and
nothing typed can break out of a quoted term (against a real FTS5 table laid out as the migration makes it)."""

from __future__ import annotations

import sqlite3

import pytest

from docs_app.models import chunk_keyword_scope
from docs_app.pipeline.ranking import keyword_terms
from docs_app.selectors.keywords import fts5_scoped_match
from tests.unit.test_retrieval import HOSTILE_QUERIES

TEXTS = [
    (1, 10, 0, "The governing law of this Agreement is the law of the State of Delaware."),
    (1, 10, 1, "Either party may terminate this agreement upon thirty days written notice."),
    (2, 20, 0, "This agreement is governed by the law of New York."),
    (2, 21, 9, "The licensee may terminate on notice; c1 d10 o0 are just words here."),
]


@pytest.fixture
def fts() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, keyword_scope, heading, "
                 "tokenize='porter unicode61 remove_diacritics 2')")
    for number, (collection, document, ordinal, text) in enumerate(TEXTS, start=1):
        scope = chunk_keyword_scope(collection_id=collection, document_id=document, ordinal=ordinal)
        conn.execute("INSERT INTO t(rowid, text, keyword_scope, heading) VALUES (?, ?, ?, ?)",
                     (number, text, scope, "d10 Scope Words" if number == 3 else ""))
    return conn


def _rows(conn: sqlite3.Connection, match: str) -> list[int]:
    sql = "SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t, 1.0, 0.0, 1.0), rowid"
    return [r[0] for r in conn.execute(sql, [match])]


def test_scope_words_name_collection_document_and_head_ordinals() -> None:
    assert chunk_keyword_scope(collection_id=3, document_id=42, ordinal=0) == "c3 d42 o0"
    assert chunk_keyword_scope(collection_id=3, document_id=42, ordinal=8) == "c3 d42"


def test_matches_rank_only_inside_the_named_scope(fts: sqlite3.Connection) -> None:
    terms = keyword_terms("Which law governs, and who may terminate?")
    assert set(_rows(fts, fts5_scoped_match(terms, collection_ids=None))) == {1, 2, 3, 4}
    assert set(_rows(fts, fts5_scoped_match(terms, collection_ids=[1]))) == {1, 2}
    assert set(_rows(fts, fts5_scoped_match(terms, collection_ids=[2]))) == {3, 4}
    assert set(_rows(fts, fts5_scoped_match(terms, collection_ids=[1, 2], document_ids=[21]))) == {4}
    assert set(_rows(fts, fts5_scoped_match(terms, collection_ids=[1, 2], head_chunks=1))) == {1, 3}
    # Scope words in a passage's text or heading are words: they neither match the scope clause nor count in the
    # ranking; the heading's words match like the text's.
    assert set(_rows(fts, fts5_scoped_match(["d10"], collection_ids=[2]))) == {3, 4}
    assert _rows(fts, fts5_scoped_match(["d10"], collection_ids=[1])) == []
    assert _rows(fts, fts5_scoped_match(["scope"], collection_ids=None)) == [3]


@pytest.mark.parametrize("text", HOSTILE_QUERIES)
def test_scoped_match_never_raises_whatever_the_user_types(fts: sqlite3.Connection, text: str) -> None:
    match = fts5_scoped_match(keyword_terms(text), collection_ids=[1, 2], head_chunks=3)
    if match:
        _rows(fts, match)
    assert fts5_scoped_match([], collection_ids=[1]) == ""


def test_a_query_over_budget_keeps_its_rarest_terms_in_order() -> None:
    from docs_app.selectors.keywords import terms_within_budget

    rows = {"agreement": 5000, "party": 3000, "crockett": 4, "royalty": 120, "unknown": 0}
    terms = ["agreement", "crockett", "party", "royalty", "unknown"]
    assert terms_within_budget(terms, rows, share=1.0, budget=20000) == terms
    assert terms_within_budget(terms, rows, share=1.0, budget=4000) == ["crockett", "party", "royalty", "unknown"]
    assert terms_within_budget(terms, rows, share=0.1, budget=900) == terms  # a narrow reader scores less
    assert terms_within_budget(terms, rows, share=1.0, budget=10) == ["crockett", "unknown"]
    assert terms_within_budget(["agreement"], rows, share=1.0, budget=1) == ["agreement"]  # never nothing
