"""Document metadata from the first pages and the file name: what a person calls the document.

For contracts: title, type, parties (and the short names they are defined as), effective date. For papers:
title, authors, year. For every document: distinctive proper nouns of its opening, as a fallback when the
layout defeats the rules (a person naming a document uses the names printed at its top).

Rules, not a model: offices hold contracts drafted in a few conventional shapes (a title line, a preamble
"… by and between A, a Delaware corporation ("A"), and B …", or a title page with the parties on lines of
their own) and papers whose title is the largest print on the first page. Whatever is not found stays empty;
nothing here guesses. Django-free.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

# Words that make a line a document title ("Supply Agreement", "Lease", "Power of Attorney").
_TYPE_WORDS = (
    "agreement", "contract", "lease", "license", "licence", "amendment", "addendum", "memorandum", "deed",
    "indenture", "guaranty", "guarantee", "warrant", "note", "letter", "terms", "plan", "charter", "bylaws",
    "certificate", "policy", "understanding", "consent", "release", "waiver", "protocol", "attorney",
    "undertaking", "covenant", "assignment", "statement of work", "order", "mou", "nda", "settlement",
)
_TYPE = re.compile(r"\b(?:" + "|".join(_TYPE_WORDS) + r")s?\b", re.IGNORECASE)
# Words of section names that are large on a page but name no document ("Materials and Methods", "Main
# Outcome Measures", "Table of Contents"): a line made only of these is no title.
_SECTION_WORDS_TEXT = (
    "abstract background introduction method methods methodology material materials result results discussion "
    "conclusion conclusions objective objectives purpose aim aims summary references contents table recitals "
    "definitions witnesseth exhibit schedule appendix annex confidential execution version copy draft design setting "
    "study patients participants subjects intervention interventions measure measures measurement measurements "
    "outcome outcomes main principal finding findings limitation limitations context hypothesis importance "
    "unlabelled evidence review and of the"
)
_SECTION_WORDS = frozenset(_SECTION_WORDS_TEXT.split())
_MONTHS = {name: number for number, names in enumerate((
    ("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
    ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
    ("november", "nov"), ("december", "dec")), start=1) for name in names}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:19|20)\d\d)"
_DATE_PATTERNS = (
    re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.IGNORECASE),
    re.compile(rf"\b{_DAY}\s+(?:day\s+of\s+)?{_MONTH},?\s+{_YEAR}\b", re.IGNORECASE),
    re.compile(rf"\b(?P<month>\d{{1,2}})/(?P<day>\d{{1,2}})/{_YEAR}\b"),
    re.compile(rf"\b{_YEAR}-(?P<month>\d\d)-(?P<day>\d\d)\b"),
)
# A month of a year, as people date a document loosely: "our December 2007 sponsorship agreement".
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b", re.IGNORECASE)
_YEAR_CUED = re.compile(r"(?:\u00a9|\(c\)|copyright|published|received|accepted|\b)\s*((?:19|20)\d\d)\b",
                        re.IGNORECASE)
_DATE_CUE = re.compile(r"\b(?:effective|dated|as of|made|entered|executed|date)\b", re.IGNORECASE)

# Legal-form suffixes: part of a party's full name, never enough to name it.
CORPORATE_SUFFIXES = frozenset({
    "inc", "incorporated", "llc", "l.l.c", "ltd", "limited", "corp", "corporation", "co", "company", "lp", "l.p",
    "llp", "plc", "ag", "gmbh", "sa", "s.a", "nv", "n.v", "bv", "b.v", "sas", "s.a.s", "spa", "pty", "pte", "kk",
    "oy", "ab", "as", "fsb", "na", "n.a", "com", "net", "org",
})
_SUFFIX = r"(?:Inc|Incorporated|LLC|L\.L\.C|Ltd|Limited|Corp|Corporation|Company|Co|LP|L\.P|LLP|PLC|AG|GmbH|" \
          r"S\.A|SA|N\.V|B\.V|S\.A\.S|S\.p\.A|Pty|FSB|N\.A)\.?"
# A company written with its legal form inside a side's description ("a joint venture comprised of GA Retail, Inc.").
_COMPANY_INSIDE = re.compile(rf"(?<![\w.])[A-Z][\w&'\u2019\-]*(?:\s+(?:[A-Z&][\w&'\u2019\-]*|of|and))*,?\s+{_SUFFIX}"
                             r"(?!\w)")
# Roles that contracts define as short names: they name a side, not a document.
_ROLES_TEXT = (
    "agreement amendment company party parties effective date licensee licensor sponsor customer client supplier "
    "vendor distributor agent purchaser seller buyer merchant provider recipient consultant contractor executive "
    "employee employer reseller franchisee franchisor lessor lessee landlord tenant borrower lender guarantor "
    "manufacturer developer partner partners affiliate network service services product products licensors investor "
    "investors shareholder shareholders holder holders trustee owner operator shipper carrier sender transporter "
    "marketer endorser celebrity talent artist publisher producer member members parent subsidiary contract term "
    "territory adviser advisor manager sub-adviser subadviser fund funds bank corporation business exhibit schedule "
    "annex appendix recitals premises property software content work works date dates information confidential "
    "commencement capacity closing effective execution marks trademarks materials rights units shares"
)
_ROLES = frozenset(_ROLES_TEXT.split())
_CONNECTORS = frozenset({"of", "and", "the", "de", "du", "la", "le", "von", "van", "der", "for", "&"})
_STOP_TEXT = (
    "a an the this that these those and or but of to in on at by for with from as is are was were be been has have "
    "had not no all any each such its it their there here who which what when where shall will may must can should "
    "would"
)
_STOP = frozenset(_STOP_TEXT.split())
_SPACES = re.compile(r"\s+")
_QUOTE = "\"'\u201c\u201d\u2018\u2019"
# A defined name in double quotes, or in single quotes that open after a space or bracket (not an apostrophe).
_QUOTED = re.compile(f"[\"\u201c]([^{_QUOTE}]{{1,60}}?)[\"\u201d]"
                     f"|(?<=[\\s(])['\u2018]([A-Z][^{_QUOTE}]{{0,40}}?)['\u2019](?=[\\s),;.])")
_ENDS_PREAMBLE = re.compile(
    r"\b(?:WHEREAS|W\s?I\s?T\s?N\s?E\s?S\s?S\s?E\s?T\s?H|RECITALS?|NOW,? THEREFORE|BACKGROUND|PREAMBLE)\b"
    r"|\b(?:agree|agrees)\s+as\s+follows", re.IGNORECASE)
_BETWEEN = re.compile(r"\b(?:between|among|by\s+and\s+between|by\s+and\s+among)\b[:\s]*", re.IGNORECASE)
# A "between" clause names parties when it is a contract's: the words before it say so ("This Agreement is made
# ... by and between"). A paper's "association between smoking and ..." names none (PubMedQA: 1 abstract in 10
# got a "party" such as "Cancer Treatment Quality of Life Questionnaire", and questions were routed to it).
_CONTRACT_CUE = re.compile(r"\b(?:agreement|contract|lease|licen[cs]e|amendment|addendum|memorandum|deed|indenture|"
                           r"undertaking|understanding|covenant|entered|made|executed|dated|effective|part(?:y|ies)|"
                           r"by\s+and)\b", re.IGNORECASE)
_PARTY_SPLIT = re.compile(r";|\band\b|\bon the (?:one|other) hand\b|,\s*(?=\(?[a-z]\)\s)|\(\s*[a-z]\s*\)\s"
                          r"|(?<=\)),\s*(?=[A-Z])",
                          re.IGNORECASE)
_NAME_STOP = re.compile(
    r",\s*(?:a|an|the|its|each|with|having|whose|located|organi[sz]ed|incorporated|acting|as|by|through|"
    r"which|who|hereinafter|referred|duly|being|together|collectively|individually)\b"
    r"|\s\(|\s+(?:a|an)\s+(?=[A-Z][a-z]+\s+(?:corporation|company|limited|general|business|statutory))"
    r"|\s+(?:with|having|whose|located|organi[sz]ed|incorporated|acting|hereinafter|through)\s",
)
_PERSON_OR_ORG = re.compile(r"^[\w][\w.&'\u2019,\- ]*$")
_AUTHOR = re.compile(r"^[A-Z][a-zA-Z'\u2019\-]+(?:\s+[A-Z]\.?)*(?:\s+[A-Z][a-zA-Z'\u2019\-]+)+$"
                     r"|^[A-Z]\.(?:\s?[A-Z]\.)*\s+"
                     r"[A-Z][a-zA-Z'\u2019\-]+$")
_MARK = r"[\d*\u2020\u2021\u00a7\u00b6]+"
_FOOTNOTE_MARKS = re.compile(rf"(?<=[a-z]){_MARK}(?:,{_MARK})*")  # "Okafor1,2*"
_PAPER_CUES = re.compile(r"\b(?:abstract|doi|journal|et al|received|accepted|published|keywords|issn|"
                         r"university|department|hospital|institute)\b", re.IGNORECASE)
_NOISE_LINE = re.compile(r"^(?:exhibit|ex-|page\s+\d|\d+$|\[|\*|confidential|execution|quicklinks|case\s|doc\s|"
                         r"filed|certain|dated\b|table of contents)", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:[\u2019'][a-z]+)?", re.UNICODE)


@dataclass(frozen=True)
class DocumentMetadata:
    """What the document's first pages say it is. Empty strings and tuples where nothing was found."""

    title: str = ""
    doc_type: str = ""
    parties: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # short names the parties are defined as ("ABG", "Cano")
    effective_date: str = ""  # ISO 8601
    authors: tuple[str, ...] = ()
    year: int | None = None
    keywords: tuple[str, ...] = field(default=())  # distinctive proper nouns of the opening

    def label(self, *, fallback: str = "") -> str:
        """One line that says which document this is: "Cooperation Agreement - HPIL Energytech Inc.; Ginares
        Group AG (2015)", "Title - Smith, Jones (2019)"."""
        who = self.parties[:3] or self.authors[:3]
        label = self.title or fallback
        if who:
            label = f"{label} - {'; '.join(who)}" if label else "; ".join(who)
        if self.year:
            label = f"{label} ({self.year})"
        return label

    def as_dict(self) -> dict[str, object]:
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> DocumentMetadata:
        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key) or ()
            return tuple(str(item) for item in value) if isinstance(value, list | tuple) else ()

        year = data.get("year")
        return cls(title=str(data.get("title") or ""), doc_type=str(data.get("doc_type") or ""),
                   parties=strings("parties"), aliases=strings("aliases"),
                   effective_date=str(data.get("effective_date") or ""), authors=strings("authors"),
                   year=year if isinstance(year, int) else None, keywords=strings("keywords"))


@dataclass(frozen=True)
class Line:
    """A line of the first page as laid out: its text and font size (0 when unknown)."""

    text: str
    size: float = 0.0


def metadata_extract(*, pages: Sequence[str], file_name: str, pdf_info: Mapping[str, str] | None = None,
                     first_page_lines: Sequence[Line] = ()) -> DocumentMetadata:
    """Metadata from the text of the first pages (two are plenty), the file name, the PDF's info dictionary
    and the font sizes of the first page's lines when the extractor gave them."""
    head = "\n".join(pages[:2])
    lines = [_clean(line) for line in head.splitlines()]
    lines = [line for line in lines if line]
    flat = _clean(" ".join(lines[:120]))
    paper = len(_PAPER_CUES.findall(" ".join(lines[:60]))) >= 2 and not _BETWEEN.search(flat[:3000])
    title = (_title_by_size(first_page_lines) if paper else "") or _title_from_lines(lines, flat)
    title = title or _title_from_info(pdf_info) or _title_from_file(file_name)
    parties, aliases = _parties(lines, flat)
    authors = _authors(lines, title) if paper else ()
    year_match = re.search(r"\b(?:19|20)\d\d\b", pdf_info.get("creationDate", "") if pdf_info else "")
    effective = _effective_date(flat[:4000])
    year = None
    if paper:
        years = [int(y) for y in _YEAR_CUED.findall(" ".join(lines[:80]))]
        year = max(years) if years else (int(year_match.group()) if year_match else None)
    elif effective:
        year = int(effective[:4])
    return DocumentMetadata(
        title=_display_case(title), doc_type=_doc_type(title), parties=tuple(parties), aliases=tuple(aliases),
        effective_date=effective, authors=tuple(authors), year=year,
        keywords=tuple(_opening_keywords(lines[:60], exclude=[title, *parties, *aliases, *authors])),
    )


# --- title --------------------------------------------------------------------------------------------------

def _title_by_size(lines: Sequence[Line]) -> str:
    """The largest print near the top of the first page, when it stands clearly above the body text."""
    sized = [line for line in lines if line.size > 0 and len(_clean(line.text)) > 3]
    if len(sized) < 3:
        return ""
    sizes = sorted(line.size for line in sized)
    body = sizes[len(sizes) // 2]
    top = max(sizes)
    if top < body * 1.2:
        return ""
    picked: list[str] = []
    for line in sized:
        if abs(line.size - top) < 0.5 and not _generic(line.text):
            picked.append(_clean(line.text))
        elif picked:
            break
    return " ".join(picked)[:300]


def _title_from_lines(lines: list[str], flat: str) -> str:
    """A short line near the top that carries a document-type word ("SUPPLY AGREEMENT"), joined with the
    short capitalised lines around it that continue it ("SECOND AMENDMENT" / "TO" / "CO-BRANDING AGREEMENT");
    else the name the preamble gives itself ("This Supply Agreement (the "Agreement") ...")."""
    for index, line in enumerate(lines[:40]):
        words = line.split()
        if not 1 <= len(words) <= 14 or _NOISE_LINE.match(line) or not _TYPE.search(line):
            continue
        if line[0].islower() or line.lower().startswith(("this ", "the ", "whereas", "in witness")):
            continue
        if not _looks_like_heading(line):
            continue
        parts = [line]
        follow = index + 1
        while follow < len(lines) and len(parts) < 4 and _continues_title(parts[-1], lines[follow]):
            parts.append(lines[follow])
            follow += 1
        title = " ".join(parts)
        return re.sub(r"\s*(?:\{\*+\}|\[\*+\]|\*+)\s*$", "", title).strip(" .:")
    match = re.search(r"\bthis\s+((?:[\w&\u2019'\-]+\s+){0,6}?(?:agreement|contract|lease|license|amendment|"
                      r"addendum|memorandum|deed|plan|note|guaranty)\b)", flat[:3000], re.IGNORECASE)
    if match and match.group(1).lower() not in {"agreement", "contract"}:
        return match.group(1)
    return ""


def _looks_like_heading(line: str) -> bool:
    letters = [c for c in line if c.isalpha()]
    if not letters:
        return False
    upper = sum(c.isupper() for c in letters) / len(letters)
    capitalised = [w for w in line.split() if w[:1].isalpha()]
    title_case = capitalised and sum(w[0].isupper() for w in capitalised) / len(capitalised) >= 0.6
    return upper > 0.7 or bool(title_case)


def _continues_title(previous: str, line: str) -> bool:
    if len(line.split()) > 8 or _NOISE_LINE.match(line) or _BETWEEN.fullmatch(line.strip() + " "):
        return False
    if line.lower() in {"and", "between", "by and between", "among", "made by and between"}:
        return False
    connector = previous.split()[-1].lower() in {"to", "of", "and", "for", "the", "on"} \
        or line.split()[0].lower() in {"to", "of", "for", "on"}
    return connector and line.isupper() == previous.isupper()


def _title_from_info(info: Mapping[str, str] | None) -> str:
    title = _clean((info or {}).get("title", ""))
    bad = re.compile(r"microsoft|\.docx?$|\.pdf$|untitled|^document\d*$|^[\w\-]+\.\w+$", re.IGNORECASE)
    return title if 3 <= len(title) <= 300 and len(title.split()) >= 2 and not bad.search(title) else ""


def _title_from_file(name: str) -> str:
    """The file name's part that reads like a title: after EDGAR-style prefixes, the segment with a type word."""
    stem = Path(name).stem if Path(name).suffix.lower() == ".pdf" else Path(name).name
    segments = [s.strip() for s in re.split(r"_|(?<=\d)-|-(?=EX)|-(?=\d)", stem) if s.strip()]
    typed = [s for s in segments if _TYPE.search(s)]
    return _clean((typed[-1] if typed else "").replace("_", " "))


def _doc_type(title: str) -> str:
    """The kind of document, from its title: "Second Amendment to Co-Branding Agreement" -> "amendment";
    "Transition Services Agreement" -> "services agreement"."""
    if not title:
        return ""
    words: list[str] = re.findall(r"[A-Za-z][A-Za-z\-]*", title.lower())
    for word in words:
        if word in {"amendment", "addendum"}:
            return word
    for index in range(len(words) - 1, -1, -1):
        if _TYPE.fullmatch(words[index]):
            head = words[index]
            if head == "attorney" and index >= 2 and words[index - 1] == "of":
                return " ".join(words[index - 2:index + 1])
            before = words[index - 1] if index and words[index - 1] not in {"and", "of", "the", "this"} else ""
            return f"{before} {head}".strip()
    return ""


def _display_case(title: str) -> str:
    """ALL-CAPS titles in title case; anything else as written."""
    title = _clean(title)
    if not title or sum(c.isupper() for c in title) < 0.7 * sum(c.isalpha() for c in title):
        return title
    small = {"of", "and", "to", "for", "the", "a", "an", "on", "in", "by", "with", "between"}
    words = title.lower().split()
    return " ".join(w if i and w in small else "-".join(p[:1].upper() + p[1:] for p in w.split("-"))
                    for i, w in enumerate(words))


def _generic(text: str) -> bool:
    words = re.findall(r"[a-z]+", _clean(text).lower())
    return not words or all(word in _SECTION_WORDS for word in words)


# --- parties ------------------------------------------------------------------------------------------------

def _parties(lines: list[str], flat: str) -> tuple[list[str], list[str]]:
    """The parties of whichever comes first: a title page naming them, or the preamble's "between" clause (a
    "between" further down may be any sentence: "registered in England and Wales")."""
    on_title_page = _parties_from_title_page(lines)
    # A title page's own "between" line sits right before its first party.
    title_page_first = bool(on_title_page) and flat.find(on_title_page[0]) < _between_offset(flat) + 40
    parties = (on_title_page if title_page_first else []) or _parties_from_preamble(flat) or on_title_page
    aliases = _aliases(flat, parties)
    return _distinct(parties)[:8], _distinct(aliases)[:8]


def _between_offset(flat: str) -> int:
    match = _BETWEEN.search(flat[:5000])
    return match.start() if match else len(flat)


def _parties_from_preamble(flat: str) -> list[str]:
    """Names in the first "between/among" clause: each side up to its description (", a Delaware
    corporation", "(the "Company")", "having its offices at ...")."""
    match = _BETWEEN.search(flat[:5000])
    if match is None or not _CONTRACT_CUE.search(flat[max(0, match.start() - 300):match.end()]):
        return []
    clause = flat[match.end():match.end() + 900]
    end = _ENDS_PREAMBLE.search(clause)
    if end:
        clause = clause[:end.start()]
    names: list[str] = []
    for piece in _PARTY_SPLIT.split(clause):
        piece = piece.strip(" ,:;()")
        piece = re.sub(r"^(?:the\s+)?(?:party\s+[a-z]\s*:\s*)", "", piece, flags=re.IGNORECASE)
        piece = re.sub(r"^the\s+(?=[A-Z]{2,}\s+[A-Z]{2,}\b)", "", piece)  # "the TOWN OF VINTON, VIRGINIA, a ..."
        named = bool(piece) and (piece[0].isupper() or bool(re.match(rf"^[\w.\-]+,?\s+{_SUFFIX}", piece)))
        if not named:
            piece = _company_inside(piece)  # "a contractual joint venture comprised of GA Retail, Inc. ("GA")"
            if not piece:
                continue
        name = _tidy(_NAME_STOP.split(piece, maxsplit=1)[0])
        name = re.sub(rf"^(.*?\b{_SUFFIX})(?:[\s,].*)?$", r"\1", name)  # "Acme, Inc. located at" -> "Acme, Inc."
        if _plausible_name(name):
            names.append(name)
    return names


def _company_inside(piece: str) -> str:
    """The first company a side's description names with its legal form after a plain word ("comprised of GA
    Retail, Inc."); not one after "a" or "an" ("a New Jersey Corporation" describes a side, it names none), nor
    the tail of a name whose start is not a plain word ("e.l.f. Beauty, Inc.", "1234567 Ontario Limited")."""
    for match in _COMPANY_INSIDE.finditer(piece):
        before = piece[:match.start()].split()
        previous = before[-1] if before else ""
        if previous.isalpha() and previous.islower() and previous not in {"a", "an"}:
            return match.group()
    return ""


def _parties_from_title_page(lines: list[str]) -> list[str]:
    """A title page with the parties on lines of their own around a lone "and" (or "between ... and")."""
    names: list[str] = []
    for index, line in enumerate(lines[:40]):
        low = line.lower().strip(" ,")
        if low == "and" and 0 < index < len(lines) - 1:
            names += [lines[index - 1], lines[index + 1]]
        elif low.endswith(" and") and index < len(lines) - 1 and len(line.split()) <= 8:
            names += [line[: -len(" and")], lines[index + 1]]
    tidy = [_tidy(name) for name in names]
    return [name for name in tidy if _plausible_name(name)]


_ABBREVIATED_END = re.compile(r"\b(?:inc|corp|co|ltd|bros|jr|sr|[a-z](?:\.[a-z])*)\.$", re.IGNORECASE)


def _tidy(name: str) -> str:
    """A name without surrounding punctuation, but with the period of a final abbreviation ("Inc.")."""
    name = name.strip(" ,;:")
    if name.endswith(".") and not _ABBREVIATED_END.search(name):
        name = name.rstrip(".")
    return name


def _plausible_name(name: str) -> bool:
    words = name.split()
    if not 1 <= len(words) <= 10 or not _PERSON_OR_ORG.match(name):
        return False
    # Words that must be capitalised: not connectors, not domains ("deltathree.com, Inc.")
    lettered = [word for word in words if word[:1].isalpha() and word.lower() not in _CONNECTORS
                and not re.search(r"\w\.\w", word)]
    if not lettered or sum(word[0].isupper() for word in lettered) < 0.75 * len(lettered):
        return False  # "Emdeon agrees to accept": a sentence, not a name
    if sum(any(c.isdigit() for c in word) for word in words) >= 2:
        return False  # a table-of-contents line
    low = name.lower().strip(" .")
    if (_TYPE.search(name) and not re.search(_SUFFIX + r"$", name)) or low in _ROLES or _generic(name):
        return False
    return not any(_DATE_PATTERNS[i].search(name) for i in range(2)) and not low.startswith(("dated", "made"))


def _aliases(flat: str, parties: list[str]) -> list[str]:
    """Quoted short names defined in the preamble ("ABG", "Cano"), roles ("Company", "Licensee") excluded."""
    between = _BETWEEN.search(flat[:5000])
    start = between.start() if between else 0
    region = flat[start:start + 1200]
    end = _ENDS_PREAMBLE.search(region)
    region = region[: end.start()] if end else region
    aliases: list[str] = []
    for match in _QUOTED.finditer(region):
        alias = (match.group(1) or match.group(2)).strip(" ,.")
        words = alias.split()
        if not 1 <= len(words) <= 4 or not alias[:1].isupper():
            continue
        if all(word.lower().strip(".,") in _ROLES for word in words) or _TYPE.search(alias):
            continue
        if any(alias.lower() == party.lower() for party in parties):
            continue
        aliases.append(alias)
    return aliases


# --- papers -------------------------------------------------------------------------------------------------

def _authors(lines: list[str], title: str) -> list[str]:
    """The by-line after the title: names separated by commas or "and", footnote marks removed."""
    start = 0
    for index, line in enumerate(lines[:30]):
        if title and _clean(line) and _clean(line) in title:
            start = index + 1
    for line in lines[start:start + 6]:
        cleaned = _FOOTNOTE_MARKS.sub("", line)
        cleaned = re.sub(r"\b(?:and|&)\b", ",", cleaned)
        names = [_clean(part) for part in cleaned.split(",") if _clean(part)]
        people = [name for name in names if _AUTHOR.match(name)]
        if len(people) >= 1 and len(people) >= 0.6 * len(names):
            return people[:20]
    return []


# --- dates and keywords -------------------------------------------------------------------------------------

def days_written(text: str) -> list[WrittenDate]:
    """The whole dates (day, month and year) written in the text, in order."""
    return [written for written in dates_written(text) if len(written.iso) == len("2007-12-05")]


@dataclass(frozen=True)
class WrittenDate:
    start: int  # character offsets in the text
    end: int
    iso: str  # "2007-12-05"; "2007-12" for a month and year ("December 2007")


def dates_written(text: str) -> list[WrittenDate]:
    """The dates, and months of a year, written in the text, with their places, in order."""
    found: list[WrittenDate] = []
    for pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            iso = _iso(match.group("year"), match.group("month"), match.group("day"))
            if iso:
                found.append(WrittenDate(match.start(), match.end(), iso))
    for match in _MONTH_YEAR.finditer(text):
        month = _MONTHS[match.group("month").lower()]
        if not any(d.start <= match.start() < d.end for d in found):  # "5 December 2007" holds "December 2007"
            found.append(WrittenDate(match.start(), match.end(), f"{match.group('year')}-{month:02d}"))
    return sorted(found, key=lambda d: d.start)


def _effective_date(text: str) -> str:
    """The first date with a cue ("effective", "dated", ...) shortly before it, else the first date."""
    candidates = [(0 if _DATE_CUE.search(text, max(0, written.start - 80), written.start) else 1, written.start,
                   written.iso) for written in days_written(text)]
    return min(candidates)[2] if candidates else ""


def _iso(year: str, month: str, day: str) -> str:
    number = int(month) if month.isdigit() else _MONTHS.get(month.lower().rstrip("."), 0)
    try:
        return date(int(year), number, int(day)).isoformat()
    except ValueError:
        return ""


def _opening_keywords(lines: list[str], *, exclude: Iterable[str]) -> list[str]:
    """Capitalised words of the opening that are not sentence openers, roles or words already named."""
    known = {word.lower() for text in exclude for word in _WORD.findall(text)}
    found: dict[str, None] = {}
    for line in lines:
        words = _WORD.findall(line)
        if len(words) > 6 and line.isupper():
            continue  # a shouted disclaimer ("CERTAIN CONFIDENTIAL INFORMATION ... HAS BEEN OMITTED")
        for position, word in enumerate(words):
            if len(word) < 3 or word.isdigit() or not word[0].isupper() or (position == 0 and word.istitle()):
                continue
            low = word.lower()
            if low in known or low in _STOP or low in _ROLES or low in CORPORATE_SUFFIXES or _TYPE.fullmatch(low):
                continue
            found.setdefault(word, None)
    return list(found)[:40]


def _clean(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text)).strip()


def _distinct(items: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.lower(), item)
    return list(seen.values())
