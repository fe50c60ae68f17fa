"""Document-aware hybrid passage ranking: the method, apart from where the passages are stored.

1. Which documents does the question name? (`mentions`: any phrasing, from document metadata.) A follow-up that
   names none is asked about the documents its previous question named.
2. What does it ask? The question without the words that named documents: "What is the governing law for the
   Acme Supply Agreement?" asks "What is the governing law for the?", and the keyword side also drops the
   words that fill a large share of the named documents' passages (a contract's own subject matter is on
   every page and picks no passage inside it).
3. Passages: dense (vectors of chunks embedded with their document title and section heading) and keyword
   (BM25) rankings, fused by reciprocal rank. When documents are named, the asking part is ranked inside them
   (weight 1; both readings of an undecided phrase after a name), and, with weight `global_weight`, the whole
   question inside them by meaning and the asking part over the scope; passages of the named documents come
   first. When none is named, the whole question over the whole scope: no routing, nothing keyed to how the
   question is written.

The `SearchIndex` protocol is the storage (the DB keyword index and Chroma in the app, anything in a
benchmark harness); everything here is pure.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from docs_app.pipeline.mentions import (
    DocumentNames,
    Mention,
    Word,
    is_content,
    is_initialism,
    joined_words,
    may_be_misspelt_name,
    mention_units,
    mentions_pick,
    mentions_score,
    misspelt_name,
    names_vocabulary,
    question_words,
    specificity_from_counts,
    units_written_as_names,
    without_mentions,
    written_as_names,
)

Vector = npt.NDArray[np.float32]
# A word this specific to the scope's documents (see mentions.specificity_from_counts), found in a named
# document, describes it when it stands next to its name.
DESCRIBING_SPECIFICITY = 0.5
# ... or when it is on this share of their passages, this many times its share over the whole scope.
TOPICAL_SHARE = 0.05
TOPICAL_RATIO = 3.0
# A misspelt name is looked up by its first letters: a typo there is rarer than after them.
MISSPELT_PREFIX = 3

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
# Words a question uses to refer to the document or its parts, not to what it asks: they match every passage of
# a contract ("Does this contract include a non-compete clause?" asks about non-competition).
_REFERRING_WORDS = frozenset({"contract", "clause", "provision", "document", "include", "includes", "included"})
_WORD = re.compile(r"\w+", re.UNICODE)
_MAX_TERMS = 48


def keyword_terms(text: str) -> list[str]:
    """Distinct lower-cased word terms of the text, stop-words dropped, in order of first appearance."""
    terms: dict[str, None] = {}
    for word in _WORD.findall(text.lower()):
        if word not in STOP_WORDS and word not in _REFERRING_WORDS and (len(word) > 1 or word.isdigit()):
            terms.setdefault(word, None)
    return list(terms)[:_MAX_TERMS]


def fts5_query(terms: Iterable[str]) -> str:
    """An FTS5 MATCH expression that ORs the terms. Each term is a quoted string, so no character a user types
    (quotes, '*', '-', ':', NEAR, parentheses) can be read as FTS5 syntax. Empty: no terms."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def rrf_fuse(rankings: Iterable[tuple[float, Sequence[int]]], *, k: int) -> dict[int, float]:
    """Reciprocal-rank fusion: each ranked list adds weight / (k + rank) to its items (rank from 1)."""
    scores: dict[int, float] = defaultdict(float)
    for weight, ranked in rankings:
        for rank, item in enumerate(ranked, start=1):
            scores[item] += weight / (k + rank)
    return dict(scores)


class SearchIndex(Protocol):
    """Passages and document names of one scope (the documents a person may read and chose to ask about).

    Contract: every method sees only that scope's ready documents; rankings are chunk ids, best first."""

    def document_count(self) -> int: ...

    def document_names(self, tokens: Sequence[str], *, limit: int, prefixes: Sequence[str] = ()) -> list[DocumentNames]:
        """Documents whose names share a word with `tokens` (folded, see mentions.fold), or hold a word starting
        with one of `prefixes`, best first."""
        ...

    def document_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        """For each word or run of words, in how many documents it occurs: in their text or their names."""
        ...

    def names_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        """For each word or run of words, how many documents hold it in their names."""
        ...

    def dense(self, vector: Vector, *, limit: int, document_ids: Sequence[int] | None = None,
              near: Sequence[int] = ()) -> list[int]:
        """`near`: passages found relevant another way; an index whose nearest vectors may all lie outside the
        scope may complete the ranking from their documents."""
        ...

    def keyword(self, terms: Sequence[str], *, limit: int, document_ids: Sequence[int] | None = None) -> list[int]:
        ...

    def term_shares(self, terms: Sequence[str], *, document_ids: Sequence[int] | None) -> dict[str, float]:
        """For each term, the share of the documents' chunks (None: the scope's) that contain it."""
        ...

    def chunk_documents(self, chunk_ids: Collection[int]) -> dict[int, int]: ...


@dataclass(frozen=True)
class RankingOptions:
    """The knobs. Defaults are the plainest setting among those that measured alike on the dev questions."""

    hybrid: bool = True  # False: dense only over the whole question (the benchmark's baseline)
    route: bool = True  # find the documents a question names and rank inside them
    candidates: int = 50  # per ranked list
    rrf_k: int = 10  # 5-60 measured within two questions of each other; 60 let a poor ranking drown a good one
    keyword_weight: float = 1.0  # keyword rankings' weight relative to dense ones
    global_weight: float = 0.3  # when documents are named: what is asked over the scope, the question inside them
    named_boost: float = 1.0  # added to passages of named documents (scaled by how clearly each is named)
    common_share: float = 0.3  # a term in more of the focused documents' chunks than this picks no passage
    focus_scope: int = 3  # a scope this small is focused on as a whole (ask this document)
    mention_threshold: float = 0.8
    mention_ratio: float = 0.6
    name_candidates: int = 12  # documents whose names share most with the question, scored in full
    # Keyword passages whose documents complete a wide scope's dense ranking when its nearest vectors are others'
    # (SearchIndex.dense `near`): at 1M chunks, 200 found passages as similar as the vector store's filtered
    # search (mean top-10 similarity 0.574 vs 0.573; 50: 0.557) at a fraction of its cost (bench/scale.py).
    completion_candidates: int = 200


DENSE_ONLY = RankingOptions(hybrid=False, route=False)


@dataclass(frozen=True)
class Ranking:
    ordered: list[int]  # chunk ids, best first
    scores: dict[int, float]
    asked: list[str]  # the texts that were embedded for what is asked (for similarity to passages)
    vectors: list[Vector]
    named: list[Mention] = field(default_factory=list)
    from_previous: bool = False  # the documents were named by the previous question


def documents_named(question: str, *, index: SearchIndex, options: RankingOptions) -> list[Mention]:
    """The documents the question clearly names (empty: none, or too many to be a reference)."""
    tokens = list(dict.fromkeys(w.token for w in question_words(question) if is_content(w.token)))
    count = index.document_count()
    if not options.route or not tokens or count <= 1:
        return []
    candidates = index.document_names(tokens, limit=options.name_candidates)
    candidates += _misspelt_candidates(question, candidates, index=index, options=options)
    if not candidates:
        return []
    units = mention_units(question, candidates)
    frequency = index.document_frequency(units)
    # A word the question writes as a name ("the deal with Affinity") is as specific as the documents that bear
    # it as a name: contracts that mention a company in passing (Wilmington as a city, a trustee) are not
    # named by it. Words in lower case keep the count from the text too: "audit" is some firm's name somewhere.
    as_names = units_written_as_names(question, candidates)
    if as_names:
        frequency.update({unit: count for unit, count in index.names_frequency(as_names).items() if count})
    specificity = {unit: specificity_from_counts(frequency.get(unit, 0), count) for unit in units}
    scored = mentions_score(question, candidates, specificity=specificity)
    return mentions_pick(scored, threshold=options.mention_threshold, ratio=options.mention_ratio,
                         max_documents=options.focus_scope)


def _misspelt_candidates(question: str, found: Sequence[DocumentNames], *, index: SearchIndex,
                         options: RankingOptions) -> list[DocumentNames]:
    """Documents that a word written as a name, found in no name, may name misspelt ("Watley" for "Wately"): those
    with a name word of its first letters; `mentions_score` keeps the ones one edit away."""
    said = names_vocabulary(found)
    prefixes = list(dict.fromkeys(word.token[:MISSPELT_PREFIX] for word in question_words(question)
                                  if word.token not in said and may_be_misspelt_name(word)))
    if not prefixes:
        return []
    known = {document.document_id for document in found}
    return [document for document in index.document_names([], limit=options.name_candidates, prefixes=prefixes)
            if document.document_id not in known]


def passages_rank(question: str, *, index: SearchIndex, embed: Callable[[Sequence[str]], npt.NDArray[np.float32]],
                  options: RankingOptions, previous: str | None = None) -> Ranking:
    """Chunk ids ranked for the question; `previous` is the question before it in a conversation."""
    if not options.hybrid:
        vector = embed([question])[0]
        ordered = index.dense(vector, limit=options.candidates)
        return Ranking(ordered=ordered, scores=rrf_fuse([(1.0, ordered)], k=options.rrf_k), asked=[question],
                       vectors=[vector])
    named = documents_named(question, index=index, options=options)
    from_previous = False
    if not named and previous:
        named = documents_named(previous, index=index, options=options)
        from_previous = bool(named)
    asked = _what_is_asked(question, named, index=index) if named and not from_previous else [question]
    asked = [text for text in asked if keyword_terms(text)] or [question]
    asking = asked[0]
    texts = list(dict.fromkeys([question, *asked]))
    vectors = dict(zip(texts, embed(texts), strict=True))
    limit = options.candidates
    focus: list[int] | None = [m.document_id for m in named] or None
    focused_scope = focus is None and index.document_count() <= options.focus_scope

    rankings: list[tuple[float, Sequence[int]]] = []
    if focus is not None or focused_scope:
        for text in asked:
            terms = _discriminating(keyword_terms(text), index=index, document_ids=focus, options=options)
            rankings += [(1.0, index.dense(vectors[text], limit=limit, document_ids=focus)),
                         (options.keyword_weight, index.keyword(terms, limit=limit, document_ids=focus))]
        if question not in asked:
            # The whole question too, by meaning, as lightly as over the scope: a passage that answers it often
            # says the names the asking part leaves out, and what the asking part lost is still there.
            rankings.append((options.global_weight, index.dense(vectors[question], limit=limit, document_ids=focus)))
    weight = options.global_weight if focus is not None else 1.0
    if not focused_scope and weight > 0:
        by_keyword = index.keyword(keyword_terms(asking), limit=max(limit, options.completion_candidates))
        rankings += [(weight, index.dense(vectors[asking], limit=limit, near=by_keyword)),
                     (weight * options.keyword_weight, by_keyword[:limit])]
    scores = rrf_fuse(rankings, k=options.rrf_k)
    owners = index.chunk_documents(scores.keys())
    if named:
        best = named[0].score
        boost = {m.document_id: options.named_boost * m.score / best for m in named}
        for chunk_id in scores:
            scores[chunk_id] += boost.get(owners.get(chunk_id, -1), 0.0)
    ordered = sorted(scores, key=lambda c: (-scores[c], c))
    if focus is None and not focused_scope:
        ordered = _each_document_first(ordered, owners)
    # Similarity to what is asked, and to the whole question: a passage that answers it often says the names
    # the asking part leaves out (the abstention threshold was set on whole questions).
    return Ranking(ordered=ordered, scores=scores, asked=texts, vectors=[vectors[text] for text in texts],
                   named=named, from_previous=from_previous)


def names_absent(question: str, *, index: SearchIndex) -> list[str]:
    """The words the question uses as names (capitalised, past its first word, not function or generic words)
    that no passage of the scope holds, as the question wrote them: a question about "the Ginares agreement" in a
    matter that never mentions Ginares is about something these documents do not hold, however close other
    contracts' clauses come to what it asks."""
    candidates: dict[str, str] = {}
    words = question_words(question)
    for position in sorted(written_as_names(question, words)):
        word = words[position]
        # Words with digits (versions, codes, "HIV1") are written too many ways to be looked up as they stand.
        if is_content(word.token) and not any(c.isdigit() for c in word.token):
            candidates.setdefault(word.token, word.raw)
    if not candidates:
        return []
    # An initialism ("A.B.") may be written as one word or as its letters in the documents; a name joined in camel
    # case ("PapaJohns", as file names write it) as its words.
    apart = {word.token: tuple(word.token) if is_initialism(word) else joined_words(word)
             for word in words if word.token in candidates}
    apart = {token: parts for token, parts in apart.items() if parts}
    frequency = index.document_frequency({(token,) for token in candidates} | set(apart.values()))
    absent = {token for token in candidates
              if not frequency.get((token,), 0) and not frequency.get(apart.get(token, ()), 0)}
    if absent:
        absent -= _misspelt_names(words, absent, index=index)
    return [raw for token, raw in candidates.items() if token in absent]


def _misspelt_names(words: Sequence[Word], absent: set[str], *, index: SearchIndex) -> set[str]:
    """The absent words that are one letter off a name of a document the rest of the question points to ("the
    A.B. Watley contract" for the contract of "AB Wately, Inc."): a typo, not a name the documents lack."""
    tokens = list(dict.fromkeys(w.token for w in words if is_content(w.token) and w.token not in absent))
    if not tokens:
        return set()
    vocabulary = names_vocabulary(index.document_names(tokens, limit=RankingOptions().name_candidates))
    return {word.token for word in words if word.token in absent and misspelt_name(word, vocabulary)}


def _what_is_asked(question: str, named: list[Mention], *, index: SearchIndex) -> list[str]:
    """The question without the words that name the documents, nor those that describe them next to their
    names ("the Cooperation Agreement between A and B for Renewable Energy Projects": the projects are the
    contract's subject, not what is asked). A word describes the named documents when it is specific to them
    (rare in the scope, present in them) or topical in them (far more frequent in their passages than in the
    scope's).

    A phrase after a name that holds no such word is undecided: "the Acme agreement for indirect damages" asks
    about damages, "the BicycleTX agreement for Chief Business Officer Position" describes the contract in words
    common in the scope. Then both readings are returned, the one keeping the phrase first, and passages are
    ranked for each (CUAD dev, 60 contracts: MRR +0.01 to +0.02 named first or last, hit@5 +0.01; README)."""
    tokens = list(dict.fromkeys(w.token for w in question_words(question) if is_content(w.token)))
    frequency = index.document_frequency({(token,) for token in tokens})
    in_named = index.term_shares(tokens, document_ids=[m.document_id for m in named])
    in_scope = index.term_shares(tokens, document_ids=None)
    count = index.document_count()
    describing = set()
    for token in tokens:
        share = in_named.get(token, 0.0)
        specific = specificity_from_counts(frequency.get((token,), 0), count) >= DESCRIBING_SPECIFICITY
        topical = share >= TOPICAL_SHARE and share >= TOPICAL_RATIO * in_scope.get(token, 0.0)
        if share > 0 and (specific or topical):
            describing.add(token)
    asked = without_mentions(question, named, describing=describing)
    core = without_mentions(question, named, describing=describing, every_phrase=True)
    return list(dict.fromkeys([asked, core]))


def _each_document_first(ordered: list[int], owners: dict[int, int]) -> list[int]:
    """The best passage of each document first, then the rest, each part in rank order. A question that names
    no document among several is about whichever of them answers it: one passage per document shows more of
    them (CUAD dev, asked in a scope of the right contract and 9 others: hit@5 0.29 -> 0.33)."""
    seen: set[int] = set()
    firsts: list[int] = []
    rest: list[int] = []
    for chunk_id in ordered:
        owner = owners.get(chunk_id, -chunk_id)
        (rest if owner in seen else firsts).append(chunk_id)
        seen.add(owner)
    return firsts + rest


def _discriminating(terms: list[str], *, index: SearchIndex, document_ids: Sequence[int] | None,
                    options: RankingOptions) -> list[str]:
    """The terms that pick passages inside the focused documents: those not on a large share of their chunks."""
    if not terms:
        return terms
    shares = index.term_shares(terms, document_ids=document_ids)
    kept = [term for term in terms if shares.get(term, 0.0) <= options.common_share]
    return kept or terms
