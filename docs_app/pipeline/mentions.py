"""Which documents a question names, from what it says: pure scoring over document names.

People name a document by its title, one or both parties, a short name ("the Acme license"), its type ("the
lease"), a date, its authors, or its file name, anywhere in the sentence, or not at all. So no phrasing is
parsed: every document's names are compared with the question's words, and a word counts as much as it is
*specific* in the documents being searched. "Ginares" occurs in one contract's text: naming it is strong
evidence. "Intellectual property" occurs in most contracts: a question asking about it names none of them,
even the one titled "Intellectual Property Agreement". Specificity comes from the caller (document frequency
in the scope's text), so the same rule serves a 10-document matter and a 100,000-document archive, and
party names shared by every document of a matter stop counting there, as they should.

Evidence of a document = the sum, over the question's words and runs of consecutive words that occur in one of
its names, of the unit's specificity times the kind of name's weight (a word of the opening's proper nouns
counts half a word of the title or a party's name); a question date equal to its effective date adds one.
Only documents that stand out are picked: see `mentions_pick`.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from math import log
from pathlib import Path

from docs_app.pipeline.metadata import CORPORATE_SUFFIXES, DocumentMetadata, dates_written

# How much a word of each kind of name says about the document.
KIND_WEIGHTS: Mapping[str, float] = {
    "title": 1.0, "party": 1.0, "alias": 1.0, "author": 1.0, "type": 1.0, "file": 0.8, "keyword": 0.8,
    "opening": 1.0,  # the opening passage of a document already named: what describes it (see ranking)
}
# A title or type names a document only when most of it is said ("the supply agreement" for "Master Supply
# Agreement"); a clause topic that happens to be part of a long title ("right of first offer") does not.
TITLE_COVERAGE = 2 / 3
# A date the question writes that is a document's effective date; a month and year of it ("December 2007").
DATE_EVIDENCE = 1.0
MONTH_EVIDENCE = 0.5
# Words whose evidence reaches this are naming words: taken out of what is asked.
NAMING_EVIDENCE = 0.4
# Words by which people refer to any document: never evidence for one of them.
_GENERIC_WORDS_TEXT = (
    "agreement contract document doc docs file pdf paper article study report this that between among made dated "
    "amended restated exhibit page pages attachment version copy form draft final executed"
)
GENERIC_WORDS = frozenset(_GENERIC_WORDS_TEXT.split())
_STOP_WORDS_TEXT = (
    "a about above after again against all am an and any are as at be because been before being below between both "
    "but by can could did do does doing down during each few for from further had has have having he her here hers "
    "him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our "
    "ours out over own same she should so some such than that the their theirs them then there these they this those "
    "through to too under until up very was we were what when where which while who whom why will with would you your "
    "yours shall may might must per upon whether one two three what's does "
    # framing words: how a question is put, not what it is about
    "consider regarding concerning please tell explain describe show find give list know want need look"
)
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# A word, or an initialism written with dots ("A.B.", "U.S.A."), read as one word: "A.B. Watley" is "AB Watley".
_TOKEN = re.compile(r"(?<![^\W_])(?:[^\W\d_]\.)+[^\W\d_](?![^\W_])\.?|[^\W_]+", re.UNICODE)
# A misspelt name still names its document: "Watley" for "Wately", one letter off. Only for words this long (a
# short word is one letter from many others), written as names, and starting with the same letter.
FUZZY_MIN_LENGTH = 5
_SPOKEN_NAMES = frozenset({"title", "type", "party", "alias", "author"})
_PROPER_NAMES = frozenset({"party", "alias", "author"})
_DOCUMENT_DESCRIPTIONS = frozenset({"title", "type", "file"})
_POSTMODIFIERS = frozenset({"for", "on", "regarding", "concerning", "relating", "covering", "about", "of", "re",
                            "dated", "from", "in"})
_QUESTION_WORDS = frozenset({"what", "how", "when", "where", "which", "who", "whom", "whose", "why", "is", "are",
                             "does", "do", "did", "can", "could", "may", "might", "shall", "will", "would", "should",
                             "must", "has", "have", "had", "was", "were", "be", "been", "being", "there"})
# Verbs by which a question asks what a document says: where a phrase describing the document ends when no
# punctuation marks it ("Does the Joint Venture Agreement for Astaxanthin Production include an exclusivity
# clause?"). Folded forms (mentions.fold): "includes" -> "include".
_ASKING_VERBS = frozenset({"include", "contain", "provide", "require", "allow", "permit", "grant", "specify",
                           "state", "say", "mention", "cover", "prohibit", "restrict", "limit", "set", "define",
                           "impose", "oblige", "obligate", "list", "describe", "address", "establish", "give"})
# The most words of a company's name before its legal form ("Tate & Lyle Fermentation Products Ltd.").
_COMPANY_NAME_WORDS = 5
# Legal forms that are words too ("treated as", "co-"): legal forms only when capitalised ("Statoil AS").
_WORDS_AND_LEGAL_FORMS = frozenset({"as", "co", "com", "net", "org", "na", "sa", "ab"})
_SENTENCE_END = re.compile(r"[.?!:;]\s*$")
_BOUNDARY = re.compile(r"[,;:?!()\u2013\u2014]|\s-\s")
_POSSESSIVE = re.compile(r"['\u2019]s\b|['\u2019]", re.IGNORECASE)


@dataclass(frozen=True)
class Name:
    text: str
    kind: str  # a key of KIND_WEIGHTS


@dataclass(frozen=True)
class DocumentNames:
    document_id: int
    names: tuple[Name, ...]
    effective_date: str = ""


@dataclass(frozen=True)
class Mention:
    document_id: int
    score: float
    words: tuple[int, ...]  # positions (in question_words) of the question's words that named it


@dataclass(frozen=True)
class Word:
    raw: str
    start: int  # character offsets in the question
    end: int
    token: str  # normalised: lower-case, possessive and plural folded


def fold(word: str) -> str:
    """A word as names are compared: lower-case, NFKC, plural folded ("Licenses" -> "license")."""
    word = unicodedata.normalize("NFKC", word).lower()
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def question_words(text: str) -> list[Word]:
    """The words of a question with their places: "Papa John's" -> papa, john."""
    cleaned = _POSSESSIVE.sub(lambda m: " " * len(m.group()), unicodedata.normalize("NFKC", text))
    return [Word(raw=m.group(), start=m.start(), end=m.end(), token=fold(m.group().replace(".", "")))
            for m in _TOKEN.finditer(cleaned)]


def is_initialism(word: Word) -> bool:
    """Written as letters with dots ("A.B."): the documents' text may hold it as separate letters."""
    return "." in word.raw


def one_edit_apart(a: str, b: str) -> bool:
    """One letter inserted, deleted, replaced, or two neighbours swapped: "watley" and "wately"."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    start = 0
    while start < len(a) and a[start] == b[start]:
        start += 1
    if len(a) < len(b):
        return a[start:] == b[start + 1:]
    return a[start + 1:] == b[start + 1:] or (
        start + 1 < len(a) and a[start] == b[start + 1] and a[start + 1] == b[start] and a[start + 2:] == b[start + 2:])


def joined_words(word: Word) -> tuple[str, ...]:
    """The words a word written in camel case joins, as file names write names ("PapaJohnsInternationalInc" ->
    papa, john, international, inc); empty for any other word."""
    parts = _name_tokens(word.raw, True)
    return parts if len(parts) > 1 else ()


def may_be_misspelt_name(word: Word) -> bool:
    token = word.token
    return len(token) >= FUZZY_MIN_LENGTH and not token.isdigit() and _written_as_name(word) and is_content(token)


def misspelt_name(word: Word, vocabulary: Iterable[str]) -> str | None:
    """The name word this word of a question is a misspelling of, if it is written as a name and one edit from
    exactly one of them."""
    token = word.token
    if not may_be_misspelt_name(word):
        return None
    near = {name for name in vocabulary
            if len(name) >= FUZZY_MIN_LENGTH and name[0] == token[0] and one_edit_apart(token, name)}
    return near.pop() if len(near) == 1 else None


def name_tokens(text: str, *, camel: bool = False) -> list[str]:
    return list(_name_tokens(text, camel))


def names_vocabulary(documents: Iterable[DocumentNames]) -> set[str]:
    """Every word of the documents' names, folded as a question's words are."""
    return {token for document in documents for name in document.names
            for token in _name_tokens(name.text, name.kind == "file")}


@functools.lru_cache(maxsize=65536)
def _name_tokens(text: str, camel: bool) -> tuple[str, ...]:
    """Remembered: a question compares itself with a dozen candidate documents' names, twice."""
    if camel:
        text = _CAMEL.sub(" ", text)
    return tuple(word.token for word in question_words(text))


def is_content(token: str) -> bool:
    """A word that can name something: not a function word, legal form or generic document word, and not a
    short number (years count, clause numbers do not)."""
    if token in STOP_WORDS or token in CORPORATE_SUFFIXES or token in GENERIC_WORDS:
        return False
    return len(token) >= 4 if token.isdigit() else len(token) >= 2


def document_names(metadata: DocumentMetadata, *, file_name: str) -> list[Name]:
    """Every string by which the document may be named, with its kind."""
    names = [Name(metadata.title, "title")] if metadata.title else []
    names += [Name(party, "party") for party in metadata.parties]
    names += [Name(alias, "alias") for alias in metadata.aliases]
    names += [Name(author, "author") for author in metadata.authors]
    if metadata.doc_type:
        names.append(Name(metadata.doc_type, "type"))
    if metadata.year:
        names.append(Name(str(metadata.year), "type"))
    stem = Path(file_name).stem if Path(file_name).suffix.lower() == ".pdf" else file_name
    if stem:
        names.append(Name(stem, "file"))
    names += [Name(keyword, "keyword") for keyword in metadata.keywords]
    return names


def names_text(names: Iterable[Name]) -> str:
    """The names as one line of folded words each, for a keyword index over documents."""
    return "\n".join(" ".join(name_tokens(n.text, camel=n.kind == "file")) for n in names)


def written_as_names(question: str, words: Sequence[Word]) -> set[int]:
    """Positions of the words the question writes as names: capitalised where a sentence does not start, in a
    question whose capitals say something (not one in Title Case or in capitals throughout)."""
    lower = sum(not word.raw[:1].isupper() for word in words if is_content(word.token))
    if lower < 2 and lower < 0.25 * sum(is_content(word.token) for word in words):
        return set()
    found: set[int] = set()
    for position, word in enumerate(words):
        gap_before = question[words[position - 1].end:word.start] if position else ""
        sentence_start = position == 0 or bool(_SENTENCE_END.search(gap_before))
        if word.raw[:1].isupper() and not sentence_start:
            found.add(position)
    return found


def units_written_as_names(question: str, documents: Sequence[DocumentNames]) -> set[tuple[str, ...]]:
    """The units of `mention_units` that the question writes as names wherever it says them, that are words of a
    document's proper names (a party, alias or author), and never of any document's title, kind or file name:
    "Service Agreement" in capitals is the title of many contracts."""
    words = question_words(question)
    as_names = written_as_names(question, words)
    if not as_names:
        return set()
    proper: set[tuple[str, ...]] = set()
    other: set[tuple[str, ...]] = set()
    for document in documents:
        for kind, unit, positions in _matches(words, document):
            if not all(p in as_names for p in positions) or kind in _DOCUMENT_DESCRIPTIONS:
                other.add(unit)
            elif kind in _PROPER_NAMES:
                proper.add(unit)
    return proper - other


def mention_units(question: str, documents: Sequence[DocumentNames]) -> set[tuple[str, ...]]:
    """The words and runs of words whose specificity `mentions_score` will ask for."""
    units: set[tuple[str, ...]] = set()
    words = question_words(question)
    for document in documents:
        for _kind, unit, _positions in _matches(words, document):
            units.add(unit)
    return units


def mentions_score(question: str, documents: Sequence[DocumentNames], *,
                   specificity: Mapping[tuple[str, ...], float]) -> list[Mention]:
    """Every document with some evidence of being named, best first. `specificity` maps each unit of
    `mention_units` to [0, 1] (see `specificity_from_counts`)."""
    words = question_words(question)
    # Each date the question writes, with the positions of its words.
    asked_dates = [(written.iso, [p for p, word in enumerate(words) if written.start <= word.start < written.end])
                   for written in dates_written(question)]
    mentions: list[Mention] = []
    for document in documents:
        evidence: dict[tuple[str, ...], float] = {}
        positions: set[int] = set()
        for kind, unit, places in _matches(words, document):
            value = KIND_WEIGHTS[kind] * specificity.get(unit, 0.0)
            if value > evidence.get(unit, 0.0):
                evidence[unit] = value
            if value >= NAMING_EVIDENCE or (value > 0 and kind in _SPOKEN_NAMES):
                positions.update(places)  # a title or party said names the document whatever its words
        score = sum(evidence.values())
        for iso, places in asked_dates:
            if document.effective_date and document.effective_date.startswith(iso):
                # The date it was made names a document as a name does; a month and year less surely.
                score += DATE_EVIDENCE if len(iso) == len(document.effective_date) else MONTH_EVIDENCE
                positions.update(places)
        if score > 0:
            mentions.append(Mention(document_id=document.document_id, score=score, words=tuple(sorted(positions))))
    mentions.sort(key=lambda m: (-m.score, m.document_id))
    return mentions


def mentions_pick(mentions: Sequence[Mention], *, threshold: float = 0.8, ratio: float = 0.6,
                  max_documents: int = 3) -> list[Mention]:
    """The documents the question clearly names: evidence of at least `threshold` (about one fully specific
    word of a title or party name) and at least `ratio` of the best; none when more than `max_documents`
    qualify (the words name a kind of document, not documents)."""
    if not mentions or mentions[0].score < threshold:
        return []
    best = mentions[0].score
    picked = [m for m in mentions if m.score >= threshold and m.score >= ratio * best]
    return picked if len(picked) <= max_documents else []


def specificity_from_counts(document_frequency: int, documents: int) -> float:
    """1 for a unit found in the text of one document of the scope, 0 for one found in all; log-scaled."""
    if documents <= 1:
        return 1.0
    df = min(max(document_frequency, 1), documents)
    return log(documents / df) / log(documents)


def without_mentions(question: str, mentions: Sequence[Mention], *, describing: Collection[str] = (),
                     every_phrase: bool = False) -> str:
    """What the question asks once the words that named documents are taken out, with the function words
    that only tied them into the sentence ("for the Acme Supply Agreement between Acme Inc. and Beta LLC"
    goes as a whole, up to the punctuation around it) and what describes the named documents: `describing`
    words next to a name, or a phrase after it that holds one ("the Acme agreement for Widget Distribution in
    Europe"; "the Acme agreement for indirect damages" keeps its phrase when no word of it is describing).
    `every_phrase`: any such phrase goes, describing word or not. Unchanged when nothing was named."""
    words = question_words(question)
    drop = {p for m in mentions for p in m.words}
    if not drop:
        return question
    companies = _company_names(question, words)
    for left, right in pairwise(sorted(drop)):
        if all(not is_content(words[p].token) or p in companies for p in range(left + 1, right)):
            drop.update(range(left + 1, right))
    # Until nothing more goes: a describing word taken with a name ("... and A.B. Watley, Inc.") may be followed
    # by a phrase that describes the document too ("for Market Data Software").
    dropped = 0
    while len(drop) > dropped:
        dropped = len(drop)
        _drop_postmodifiers(question, words, drop, describing, every_phrase=every_phrase)
        _drop_neighbours(question, words, drop, describing, companies)
    kept = " ".join(word.raw for index, word in enumerate(words) if index not in drop)
    return f"{kept}?" if kept and question.rstrip().endswith("?") else kept


def _drop_neighbours(question: str, words: Sequence[Word], drop: set[int], describing: Collection[str],
                     companies: Collection[int]) -> None:
    """The function words either side of the dropped words, the rest of a company's name they are part of, and
    describing words after them, up to punctuation."""
    for position in sorted(drop):
        for step in (-1, 1):
            near = position + step
            # Function words either side; describing words only after the name (before it they may be what
            # is asked: "is there a cap on liability under the Acme agreement").
            while 0 <= near < len(words) and near not in drop and words[near].token not in _QUESTION_WORDS and (
                    step < 0 or words[near].token not in _POSTMODIFIERS) and (
                    not is_content(words[near].token) or near in companies
                    or (step > 0 and words[near].token in describing)):
                # "Acme, Inc.": the legal form after a name's comma is part of the name.
                legal_form = step > 0 and words[near].token in CORPORATE_SUFFIXES
                if _BOUNDARY.search(_gap(question, words[near], words[near - step])) and not legal_form:
                    break
                drop.add(near)
                near += step


def _company_names(question: str, words: Sequence[Word]) -> set[int]:
    """Positions of the words of company names the question writes with their legal form ("GA Retail, Inc."):
    the words right before the legal form, up to punctuation or a function word. A document's metadata may not
    list the company (a party the extraction missed), so the name's words can be rare and unknown at once; they
    still say which contract is meant, not what is asked about it."""
    found: set[int] = set()
    for end, word in enumerate(words):
        if word.token not in CORPORATE_SUFFIXES or end == 0 or (
                word.token in _WORDS_AND_LEGAL_FORMS and not word.raw[:1].isupper()):
            continue
        start = end
        while start > 0 and end - start < _COMPANY_NAME_WORDS:
            before = words[start - 1]
            gap = _gap(question, before, words[start])
            if start == end:
                gap = gap.replace(",", "", 1)  # "Acme, Inc."
            if not is_content(before.token) or before.token in _QUESTION_WORDS or before.token in _ASKING_VERBS \
                    or _BOUNDARY.search(gap):
                break
            start -= 1
        found.update(range(start, end))
    return found


def _gap(question: str, a: Word, b: Word) -> str:
    return question[min(a.end, b.end):max(a.start, b.start)]


def _drop_postmodifiers(question: str, words: Sequence[Word], drop: set[int], describing: Collection[str], *,
                        every_phrase: bool) -> None:
    """A phrase after a document's name that describes it goes with the name, up to punctuation, a question word
    or a verb that asks about the document's content: it starts with a preposition and holds a describing word
    (or is any such phrase: `every_phrase`)."""
    for position in sorted(drop):
        start = position + 1
        while start < len(words) and start not in drop and words[start].token in CORPORATE_SUFFIXES:
            start += 1  # "Acme, Inc. for ...": the legal form (after a comma or not) before the preposition
        if start in drop or start >= len(words) or words[start].token not in _POSTMODIFIERS \
                or _BOUNDARY.search(_gap(question, words[start - 1], words[start])):
            continue
        end = start
        while end < len(words) and words[end].token not in _QUESTION_WORDS and end not in drop \
                and words[end].token not in _ASKING_VERBS \
                and not _BOUNDARY.search(_gap(question, words[end - 1], words[end])):
            end += 1
        if every_phrase or any(words[p].token in describing for p in range(start, end)):
            drop.update(range(position + 1, end))


def _matches(words: Sequence[Word], document: DocumentNames) -> Iterable[tuple[str, tuple[str, ...], list[int]]]:
    """(kind, unit, question positions) for each content word of the question found in one of the document's
    names, and each run of two or more consecutive words shared with a name."""
    tokens = [word.token for word in words]
    said = set(tokens)
    said_anywhere = names_vocabulary([document]) & said
    # Read off each word once, not once per name: a question is compared with a dozen documents' names.
    joined = {position: parts for position, word in enumerate(words) if (parts := joined_words(word))}
    fuzzy = {position for position, word in enumerate(words) if word.token not in said_anywhere
             and may_be_misspelt_name(word)}
    for name in document.names:
        name_words = _name_tokens(name.text, name.kind == "file")
        if not name_words:
            continue
        if name.kind in {"title", "type"}:
            core = {t for t in name_words if t not in STOP_WORDS}
            if len(core & said) < TITLE_COVERAGE * len(core):
                continue
        vocabulary = set(name_words)
        for position, token in enumerate(tokens):
            if token not in vocabulary:
                if position in joined and _stands_in(joined[position], name_words):
                    yield name.kind, joined[position], [position]
                    continue
                # Counted as the name's own word: its specificity is that word's, which the documents hold.
                near = misspelt_name(words[position], vocabulary) if position in fuzzy else None
                if near is not None:
                    yield name.kind, (near,), [position]
                continue
            if not is_content(token):
                continue
            if name.kind != "keyword" or _written_as_name(words[position]):
                yield name.kind, (token,), [position]
        for start, length in _shared_runs(tokens, name_words):
            run = tuple(tokens[start:start + length])
            content = [t for t in run if t not in STOP_WORDS]
            if len(content) >= 2 and any(is_content(t) for t in run):
                yield name.kind, run, list(range(start, start + length))


def _stands_in(parts: tuple[str, ...], name_words: Sequence[str]) -> bool:
    """The words stand together in the name: a word written in camel case ("PapaJohnsInternationalInc", as file
    names write it) joins the words of "Papa John's International, Inc."."""
    width = len(parts)
    return any(tuple(name_words[i:i + width]) == parts for i in range(len(name_words) - width + 1))


def _written_as_name(word: Word) -> bool:
    """Capitalised as the question writes it. Keywords are capitalised words picked from a document's opening
    ("Rural", "Knowledge", "HMOs"): a question that says "knowledge and attitudes" in lower case uses them as
    words, not as the document's name (PubMedQA: such matches named the wrong abstract for 9% of questions)."""
    return word.raw[:1].isupper()


def _shared_runs(tokens: Sequence[str], name_words: Sequence[str]) -> list[tuple[int, int]]:
    """Maximal runs (start in tokens, length) of two or more words that also occur consecutively in the name."""
    places: dict[str, list[int]] = {}
    for offset, word in enumerate(name_words):
        places.setdefault(word, []).append(offset)
    runs: list[tuple[int, int]] = []
    index = 0
    while index < len(tokens):
        best = 0
        for offset in places.get(tokens[index], ()):
            length = 1
            while (index + length < len(tokens) and offset + length < len(name_words)
                   and tokens[index + length] == name_words[offset + length]):
                length += 1
            best = max(best, length)
        if best >= 2:
            runs.append((index, best))
            index += best
        else:
            index += 1
    return runs


SpecificityLookup = Callable[[set[tuple[str, ...]]], Mapping[tuple[str, ...], float]]
