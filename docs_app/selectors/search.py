"""Full-text search over the passages a person may read: the fastest way to a passage, no model needed.

Unlike retrieval for questions (any term may match, ranked by meaning and words), a search box means "pages
that contain these words": every term must be in the passage, "quoted words" must appear as a phrase, and the
hits come with a snippet whose matched words are marked. The keyword index is the one retrieval uses (SQLite
FTS5; a GIN full-text index on PostgreSQL); the collection filter comes from the database on every request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import connection
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from docs_app.models import DocumentStatus
from docs_app.selectors.keywords import fts5_phrase
from docs_app.selectors.retrieval import allowed_collection_ids
from docs_app.services.actor import AnyUser

MAX_RESULTS = 50
_MAX_TERMS = 12
# Markers FTS5 puts around matched words in a snippet; control characters no PDF text keeps (the extraction
# drops them), so escaping the snippet and then turning them into <mark> cannot be tricked by document text.
_OPEN, _CLOSE = "\x02", "\x03"
# Stand-ins for "<" and ">" inside PostgreSQL's ts_headline (see passages_search); control characters too.
_LT, _GT = "\x01", "\x04"
_QUOTED = re.compile(r'"([^"]+)"')
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    document_title: str
    collection_name: str
    page: int
    snippet: SafeString  # escaped passage text with the matched words in <mark>


@dataclass(frozen=True)
class SearchQuery:
    """What was typed, as phrases (quoted, or single words) that must all match."""

    phrases: tuple[tuple[str, ...], ...]

    @classmethod
    def parse(cls, text: str) -> SearchQuery:
        phrases: list[tuple[str, ...]] = []
        for quoted in _QUOTED.findall(text):
            words = tuple(w.lower() for w in _WORD.findall(quoted))
            if words:
                phrases.append(words)
        for word in _WORD.findall(_QUOTED.sub(" ", text)):
            phrases.append((word.lower(),))
        return cls(phrases=tuple(dict.fromkeys(phrases))[:_MAX_TERMS])

    def fts5(self) -> str:
        """Every phrase quoted (no character typed can be read as FTS5 syntax), all required, in the text column
        (the index's other column holds scope words, see docs_app.selectors.keywords)."""
        return "text : (" + " AND ".join(fts5_phrase(" ".join(words)) for words in self.phrases) + ")"

    def tsquery(self) -> str:
        """The same for PostgreSQL: words of a phrase follow each other (<->), phrases are all required (&)."""
        return " & ".join("(" + " <-> ".join(words) + ")" for words in self.phrases)


def passages_search(*, user: AnyUser, text: str, collection_ids: list[int] | None = None,
                    limit: int = MAX_RESULTS) -> list[SearchHit]:
    """Passages of READY documents in collections the user may read now that contain every phrase, best
    first."""
    query = SearchQuery.parse(text)
    allowed = allowed_collection_ids(user=user, collection_ids=collection_ids)
    if not query.phrases or not allowed:
        return []
    placeholders = ", ".join(["%s"] * len(allowed))
    if connection.vendor == "postgresql":
        sql = (
            "SELECT c.id, d.id, d.title, col.name, c.page, "  # noqa: S608 - fixed fragments, values are parameters
            "ts_headline('english', translate(c.text, %s, %s), q, %s) FROM docs_app_chunk c "
            "JOIN docs_app_document d ON d.id = c.document_id "
            "JOIN docs_app_collection col ON col.id = d.collection_id, to_tsquery('english', %s) q "
            "WHERE to_tsvector('english', c.text) @@ q AND d.status = %s "
            f"AND d.collection_id IN ({placeholders}) "
            "ORDER BY ts_rank_cd(to_tsvector('english', c.text), q) DESC, c.id LIMIT %s"
        )
        options = f"StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords=40, MinWords=15, MaxFragments=2"
        # ts_headline drops whatever its parser reads as a tag ("<script>", "<b>"): the passage's own angle
        # brackets go in as control characters and come back in _marked, so the snippet shows the text as it is.
        params: list[str | int] = ["<>", _LT + _GT, options, query.tsquery(), DocumentStatus.READY.value, *allowed,
                                   limit]
    else:
        sql = (
            "SELECT c.id, d.id, d.title, col.name, c.page, "  # noqa: S608 - fixed fragments, values are parameters
            f"snippet(docs_app_chunk_fts, 0, '{_OPEN}', '{_CLOSE}', ' … ', 40) "
            "FROM docs_app_chunk_fts f JOIN docs_app_chunk c ON c.id = f.rowid "
            "JOIN docs_app_document d ON d.id = c.document_id JOIN docs_app_collection col ON col.id = d.collection_id "
            f"WHERE docs_app_chunk_fts MATCH %s AND d.status = %s AND d.collection_id IN ({placeholders}) "
            "ORDER BY bm25(docs_app_chunk_fts, 1.0, 0.0, 0.0), c.id LIMIT %s"
        )
        params = [query.fts5(), DocumentStatus.READY.value, *allowed, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [SearchHit(chunk_id=int(chunk_id), document_id=int(document_id), document_title=str(title),
                      collection_name=str(collection), page=int(page), snippet=_marked(str(snippet)))
            for chunk_id, document_id, title, collection, page, snippet in rows]


def _marked(snippet: str) -> SafeString:
    text = " ".join(snippet.replace(_LT, "<").replace(_GT, ">").split())
    return mark_safe(escape(text).replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>"))  # noqa: S308 - escaped first
