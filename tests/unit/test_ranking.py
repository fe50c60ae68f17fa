"""Document-aware ranking over a fake index: routing only when a question names documents, follow-ups keep
the named documents, an unnamed question shows each document's best passage first."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from docs_app.pipeline.mentions import DocumentNames, Name, question_words
from docs_app.pipeline.ranking import (
    RankingOptions,
    Vector,
    fts5_query,
    keyword_terms,
    names_absent,
    passages_rank,
    rrf_fuse,
)

# Two contracts; chunk id = document * 10 + ordinal.
TEXTS = {
    10: "Supply Agreement between Northwind Traders and Quillon Biotech",
    11: "This Agreement is governed by the laws of Delaware.",
    12: "Either party may terminate on ninety days notice.",
    20: "Office Lease between Harbor Point LLC and Quillon Biotech",
    21: "This Lease is governed by the laws of New York.",
    22: "The tenant may terminate on thirty days notice.",
}
NAMES = {1: DocumentNames(1, (Name("Supply Agreement", "title"), Name("Northwind Traders", "party"))),
         2: DocumentNames(2, (Name("Office Lease", "title"), Name("Harbor Point LLC", "party")))}


def words(text: str) -> set[str]:
    return {w.token for w in question_words(text)}


class FakeIndex:
    """Word overlap stands in for both vectors and BM25."""

    def document_count(self) -> int:
        return len(NAMES)

    def document_names(self, tokens: Sequence[str], *, limit: int, prefixes: Sequence[str] = ()) -> list[DocumentNames]:
        return [n for n in NAMES.values() if any(t in tokens or t.startswith(tuple(prefixes))
                                                 for name in n.names for t in words(name.text))]

    def document_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        return {unit: sum(all(t in words(" ".join(v for c, v in TEXTS.items() if c // 10 == d)) for t in unit)
                          for d in NAMES) for unit in units}

    def names_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        return {unit: sum(all(t in words(" ".join(name.text for name in n.names)) for t in unit)
                          for n in NAMES.values()) for unit in units}

    def _ranked(self, text_words: set[str], document_ids: Sequence[int] | None) -> list[int]:
        pool = [c for c in TEXTS if document_ids is None or c // 10 in document_ids]
        scored = [(len(text_words & words(TEXTS[c])), c) for c in pool]
        return [c for score, c in sorted(scored, key=lambda s: (-s[0], s[1])) if score]

    def dense(self, vector: Vector, *, limit: int, document_ids: Sequence[int] | None = None,
              near: Sequence[int] = ()) -> list[int]:
        return self._ranked(EMBEDDED[int(vector[0])], document_ids)

    def keyword(self, terms: Sequence[str], *, limit: int, document_ids: Sequence[int] | None = None) -> list[int]:
        return self._ranked({w.token for t in terms for w in question_words(t)}, document_ids)

    def term_shares(self, terms: Sequence[str], *, document_ids: Sequence[int] | None) -> dict[str, float]:
        pool = [c for c in TEXTS if document_ids is None or c // 10 in document_ids]
        return {t: sum(t in words(TEXTS[c]) for c in pool) / len(pool) for t in terms}

    def chunk_documents(self, chunk_ids: Collection[int]) -> dict[int, int]:
        return {c: c // 10 for c in chunk_ids}


EMBEDDED: list[set[str]] = []


def embed(texts: Sequence[str]) -> np.ndarray:
    vectors = []
    for text in texts:
        EMBEDDED.append(words(text))
        vectors.append(np.array([len(EMBEDDED) - 1], dtype=np.float32))
    return np.stack(vectors)


def test_a_question_naming_a_document_is_answered_from_it_in_any_phrasing() -> None:
    for question in ("Which law governs the Harbor Point lease?", "harbor point: governing law",
                     "Consider the Office Lease; which law governs it?"):
        ranking = passages_rank(question, index=FakeIndex(), embed=embed, options=RankingOptions())
        assert [m.document_id for m in ranking.named] == [2]
        assert ranking.ordered[0] == 21


def test_a_misspelt_name_written_as_a_name_still_names_its_document() -> None:
    """No other word of the question finds the document: it is looked up by the name's first letters."""
    ranking = passages_rank("Which law governs the Nortwhind deal?", index=FakeIndex(), embed=embed,
                            options=RankingOptions())
    assert [m.document_id for m in ranking.named] == [1]
    assert ranking.ordered[0] == 11
    # In lower case it is a word, not a name; and two letters off is another word.
    for other in ("Which law governs the nortwhind deal?", "Which law governs the Nortwhimd deal?"):
        assert passages_rank(other, index=FakeIndex(), embed=embed, options=RankingOptions()).named == []


def test_a_phrase_after_a_name_that_may_be_asked_is_ranked_both_ways() -> None:
    """"for notice" holds no word describing the lease (notice is in both contracts): it may be what is asked,
    or the writer's description of the lease. Passages are ranked for both readings; "for the tenant" describes
    it (only the lease speaks of a tenant) and goes."""
    undecided = passages_rank("Which law governs the Harbor Point lease for notice?", index=FakeIndex(),
                              embed=embed, options=RankingOptions())
    assert undecided.asked[1:] == ["Which law governs for notice?", "Which law governs?"]
    assert undecided.ordered[0] == 21
    described = passages_rank("Which law governs the Harbor Point lease for the tenant?", index=FakeIndex(),
                              embed=embed, options=RankingOptions())
    assert described.asked[1:] == ["Which law governs?"]


def test_the_whole_question_is_ranked_inside_the_named_documents_too() -> None:
    """"for the tenant" describes the lease and leaves what is asked; the whole question, weighed lightly, still
    finds the passages that speak of it, after those that answer what is asked."""
    ranking = passages_rank("Which law governs the Harbor Point lease for the tenant?", index=FakeIndex(),
                            embed=embed, options=RankingOptions())
    assert ranking.asked[1:] == ["Which law governs?"]
    assert ranking.ordered[0] == 21 and 22 in ranking.ordered


def test_a_question_naming_nothing_is_not_routed_and_shows_each_document_first() -> None:
    ranking = passages_rank("Which law governs?", index=FakeIndex(), embed=embed, options=RankingOptions())
    assert ranking.named == []
    assert {ranking.ordered[0] // 10, ranking.ordered[1] // 10} == {1, 2}


def test_a_follow_up_keeps_the_documents_its_previous_question_named() -> None:
    ranking = passages_rank("And who may terminate it?", previous="Which law governs the Northwind supply "
                            "agreement?", index=FakeIndex(), embed=embed, options=RankingOptions())
    assert ranking.from_previous and [m.document_id for m in ranking.named] == [1]
    assert ranking.ordered[0] == 12


def test_keyword_terms_drop_function_and_referring_words() -> None:
    assert keyword_terms("Does this contract include a non-compete clause?") == ["non", "compete"]
    assert fts5_query(['say "hi"', "x"]) == '"say ""hi""" OR "x"'


def test_rrf_fuse_rewards_agreement_between_rankings() -> None:
    scores = rrf_fuse([(1.0, [1, 2, 3]), (1.0, [3, 1, 4])], k=60)
    assert max(scores, key=scores.__getitem__) == 1
    assert scores[3] > scores[2]


def test_names_the_scope_never_mentions_are_found_as_the_question_wrote_them() -> None:
    index = FakeIndex()
    # Quillon and Delaware are in the texts; Ginares and Acme are not.
    assert names_absent("Is the Quillon supply governed by Delaware law?", index=index) == []
    assert names_absent("Who may terminate the Ginares lease, and does Acme pay?", index=index) == ["Ginares", "Acme"]
    # Only words written as names count: not lower-case words, nor the first word of a sentence, nor generic
    # document words, however rare.
    assert names_absent("who may terminate the ginares lease?", index=index) == []
    assert names_absent("Xylophones aside, who may terminate? Zebras too?", index=index) == []
    assert names_absent("Which Agreement may be terminated?", index=index) == []
    # In Title Case every word is capitalised: no evidence of a name. Codes with digits are written many ways.
    assert names_absent("Does The Ginares Lease Allow Early Termination?", index=index) == []
    assert names_absent("Is the V30M variant or HIV1 mentioned?", index=index) == []
    # One letter off a name of the document the rest of the question names: a typo, answered, not absent.
    assert names_absent("Who may terminate the Nortwhind supply agreement?", index=index) == []
    assert names_absent("Who may terminate the Nortwhimd supply agreement?", index=index) == ["Nortwhimd"]
    # Joined in camel case, as file names write them: present when its words are ("NorthwindTraders" is "Northwind
    # Traders"), absent when they are not.
    assert names_absent("Who may terminate the NorthwindTraders agreement?", index=index) == []
    assert names_absent("Who may terminate the NorthwindGinares agreement?", index=index) == ["NorthwindGinares"]


class QuillonIndex(FakeIndex):
    """Quillon Biotech is a party to the lease only; the supply agreement mentions it in passing."""

    names = {1: NAMES[1], 2: DocumentNames(2, (Name("Office Lease", "title"), Name("Quillon Biotech", "party")))}

    def document_names(self, tokens: Sequence[str], *, limit: int, prefixes: Sequence[str] = ()) -> list[DocumentNames]:
        return [n for n in self.names.values() if any(t in tokens for name in n.names for t in words(name.text))]

    def names_frequency(self, units: Collection[tuple[str, ...]]) -> dict[tuple[str, ...], int]:
        return {unit: sum(all(t in words(" ".join(name.text for name in n.names)) for t in unit)
                          for n in self.names.values()) for unit in units}


def test_a_party_written_as_a_name_names_its_document_though_others_mention_it() -> None:
    """Both contracts' text says "Quillon"; only the lease has Quillon as a party. Written as a name, the word is
    as specific as the documents that bear it as a name; in lower case beside capitalised words it is a word, and
    a word both documents hold names neither."""
    def named(question: str) -> list[int]:
        return [m.document_id for m in passages_rank(question, index=QuillonIndex(), embed=embed,
                                                     options=RankingOptions()).named]

    assert named("Which law governs the deal with Quillon?") == [2]
    assert named("Which law governs the deal with quillon in New York?") == []
