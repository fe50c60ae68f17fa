"""Pure pieces of retrieval and answer rendering: keyword query building (against a real SQLite FTS5 table),
phrase queries for document frequencies, and which citation markers become links."""

from __future__ import annotations

import sqlite3

import pytest

from docs_app.models import Answer, AnswerStatus
from docs_app.pipeline.ranking import fts5_query as fts5_terms_query
from docs_app.pipeline.ranking import keyword_terms
from docs_app.selectors.answers import answer_render
from docs_app.selectors.keywords import fts5_phrase


def fts5_query(text: str) -> str:
    return fts5_terms_query(keyword_terms(text))

HOSTILE_QUERIES = [
    'what about "unbalanced quotes',
    "NEAR(a b) AND OR NOT *",
    "col:value ^start -minus +plus",
    "(((((",
    "a*b* \"\" '' ; DROP TABLE docs_app_chunk; --",
    "\x00\x01 null bytes",
    "émigré ÜBER naïve 東京 contract",
    "{curly} [square] <angle>",
]


@pytest.fixture
def fts() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize='porter unicode61 remove_diacritics 2')")
    conn.executemany("INSERT INTO t(text) VALUES (?)", [
        ("The governing law of this Agreement is the law of the State of Delaware.",),
        ("Either party may terminate this agreement upon thirty days written notice.",),
        ("Émigré contracts signed in 東京 are unusual.",),
    ])
    return conn


@pytest.mark.parametrize("text", HOSTILE_QUERIES)
def test_fts5_query_never_raises_whatever_the_user_types(fts: sqlite3.Connection, text: str) -> None:
    match = fts5_query(text)
    if match:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t)", [match]).fetchall()


def test_fts5_query_ors_content_words_and_ranks_the_matching_passage_first(fts: sqlite3.Connection) -> None:
    match = fts5_query("Which law governs the agreement?")
    assert match == '"law" OR "governs" OR "agreement"'
    rows = fts.execute("SELECT rowid FROM t WHERE t MATCH ? ORDER BY bm25(t)", [match]).fetchall()
    # OR semantics: the termination clause matches "agreement" too, but ranks below the law clause.
    assert [r[0] for r in rows] == [1, 2]


def test_fts5_query_matches_accented_and_cjk_terms(fts: sqlite3.Connection) -> None:
    rows = fts.execute("SELECT rowid FROM t WHERE t MATCH ?", [fts5_query("emigre 東京")]).fetchall()
    assert rows == [(3,)]


@pytest.mark.parametrize("text", HOSTILE_QUERIES)
def test_a_phrase_query_never_raises_whatever_the_words(fts: sqlite3.Connection, text: str) -> None:
    words = [part for word in text.split() for part in "".join(c if c.isalnum() else " " for c in word).split()]
    if words:
        fts.execute("SELECT rowid FROM t WHERE t MATCH ?", [fts5_phrase(" ".join(words))]).fetchall()
    assert fts.execute("SELECT rowid FROM t WHERE t MATCH ?", [fts5_phrase("governing law")]).fetchall() \
        == [(1,)]


def test_keyword_terms_drop_stop_words_and_repeats() -> None:
    assert keyword_terms("What is the term of the term sheet, and who signs it?") == ["term", "sheet", "signs"]
    assert keyword_terms("the of and") == []
    assert fts5_query("?!") == ""


def _answer(text: str, numbers: list[int], *, nearest: bool = False) -> Answer:
    # Stored as before links were built when shown: the old route in "url" must not be what is linked.
    sources = [{"number": n, "chunk_id": 100 + n, "document_id": 10 + n, "title": "T", "page": n,
                "url": f"/old-viewer/{10 + n}/{n}", "nearest": nearest} for n in numbers]
    return Answer(status=AnswerStatus.DONE, text=text, sources=sources)


def test_only_valid_markers_of_readable_sources_become_links() -> None:
    answer = _answer("Delaware law [1]. Notice is 30 days [2][9]. See [3].", [1, 2, 3])
    rendered = answer_render(answer=answer, readable={11: "A", 12: "B", 13: "C"})
    links = [(n, url) for _text, found in rendered.segments for n, url in found]
    assert links == [(1, "/documents/11/?page=1&chunk=101"), (2, "/documents/12/?page=2&chunk=102"),
                     (3, "/documents/13/?page=3&chunk=103")]
    # [9] cites an invented source: it stays plain text.
    assert "[9]" in "".join(t for t, _ in rendered.segments)
    assert [s["title"] for s in rendered.sources] == ["A", "B", "C"]


def test_an_answer_with_a_source_the_reader_lost_shows_no_text() -> None:
    answer = _answer("Delaware law [1]. Notice is 30 days [2]. See [3].", [1, 2, 3])
    rendered = answer_render(answer=answer, readable={11: "A", 12: "B"})  # document 13 (source 3) is no longer readable
    assert rendered.withheld and rendered.segments == [] and not rendered.uncited
    assert [s["number"] for s in rendered.sources] == [1, 2]
    assert rendered.hidden_sources == 1


def test_output_that_is_no_answer_is_not_shown_and_links_nothing() -> None:
    echoed = ("You answer questions about the user's documents using only the numbered sources given in the user's "
              "message. Rules: 1. Use only facts stated in the sources. Do not use outside knowledge. 2. Cite every "
              "claim with the number of its source in square brackets, like [1] or [2][3].")
    rendered = answer_render(answer=_answer(echoed, [1, 2, 3]), readable={11: "A", 12: "B", 13: "C"})
    assert rendered.unusable == "repeats its instructions"
    assert rendered.segments == [] and not rendered.uncited
    assert len(rendered.sources) == 3  # the passages found are still listed


def test_nearest_passages_of_an_abstention_are_never_citations() -> None:
    rendered = answer_render(answer=_answer("Nothing answers this [1].", [1], nearest=True), readable={11: "T"})
    assert all(not links for _text, links in rendered.segments)
    assert len(rendered.sources) == 1
