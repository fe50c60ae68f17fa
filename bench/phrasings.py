"""Natural phrasings of LegalBench-RAG questions, generated deterministically for the retrieval benchmark.

A LegalBench-RAG question reads "Consider the <contract description>; <clause question>". People type the same
question in other ways. From each one this module writes, with wording drawn from a few templates by a seeded
generator (so every run asks the same questions):

    benchmark    the question as published
    named_first  the contract named first:   "In the <description>, what is the governing law?"
    named_last   the contract named last:    "What is the governing law for the <description>?"
    one_party    by one party only:          "What is the governing law in our contract with <party>?"
    short_name   by a short name:            "What is the governing law of the <Party> <type>?"
    unnamed      not named at all, asked inside a scope holding the right contract and 9 others
    file_name    by its file name, as pasted from the library: "<file name>: what is the governing law?"

The parsing below is keyed to the benchmark's template on purpose: it is how the benchmark's questions are
rewritten, and nothing in the product reads it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

PHRASINGS = ("benchmark", "named_first", "named_last", "one_party", "short_name", "unnamed", "file_name")
_SUFFIX = re.compile(r"^(?:Inc|LLC|L\.L\.C|Ltd|Limited|Corp|Corporation|Co|LP|L\.P|LLP|PLC|AG|GmbH|S\.A|SA|N\.V|"
                     r"B\.V|FSB|N\.A)\.?,?$", re.IGNORECASE)
# How the clause questions refer to the contract they ask about.
_THIS = re.compile(r"\b(?:for|under|in|of|to|from)\s+this\s+contract\b|\bthis\s+contract\b", re.IGNORECASE)


@dataclass(frozen=True)
class Parsed:
    description: str  # "Cooperation Agreement between HPIL ENERGYTECH Inc. and GINARES GROUP AG for ..."
    title: str  # "Cooperation Agreement"
    parties: tuple[str, ...]
    ask: str  # "What is the governing law for this contract?"


def parse(question: str) -> Parsed:
    scene, _, ask = question.partition(";")
    description = re.sub(r"^\s*Consider\s+(?:the\s+)?", "", scene).strip()
    ask = ask.strip()
    before, _, after = description.partition(" between ")
    title = re.sub(r"\s+for\s+.*$", "", before).strip()
    party_text = re.sub(r"\s+for\s+(?!the\s+personal).*$", "", after).strip() if after else ""
    return Parsed(description=description, title=title, parties=tuple(_split_parties(party_text)), ask=ask)


def _split_parties(text: str) -> list[str]:
    if not text:
        return []
    pieces = [p.strip(" ,") for p in re.split(r",?\s+and\s+", text) if p.strip(" ,")]
    parties: list[str] = []
    for piece in pieces:
        current = ""
        for part in [p.strip() for p in piece.split(",")]:
            if current and (_SUFFIX.match(part) or not part):
                current = f"{current}, {part}" if part else current
            else:
                if current:
                    parties.append(current)
                current = part
        if current:
            parties.append(current)
    return [p for p in parties if p]


def rephrase(question: str, phrasing: str, *, key: str, seed: int = 20240817, file_name: str = "") -> str:
    """The question in the given phrasing (see PHRASINGS); `key` (the question id) seeds the wording; `file_name`
    is the contract's, for "file_name"."""
    if phrasing == "benchmark":
        return question
    parsed = parse(question)
    rng = random.Random(f"{seed}:{key}:{phrasing}")
    if phrasing == "unnamed":
        return _refer(parsed.ask, "this contract", rng)
    if phrasing == "file_name":
        if not file_name:
            raise ValueError("the file_name phrasing needs the contract's file name")
        stem = file_name.rsplit(".", 1)[0] if file_name.lower().endswith(".pdf") else file_name
        template = rng.choice(["{f}: {q}", "In {n}, {q}", "{Q} ({n})"])
        stripped = _without_reference(parsed.ask)
        return template.format(f=stem, n=rng.choice([file_name, stem]), q=_lower_first(stripped), Q=stripped)
    if phrasing == "named_first":
        stripped = _without_reference(parsed.ask)
        template = rng.choice(["In the {d}, {q}", "{D}: {q}", "Regarding the {d}, {q}", "About the {d} - {q}"])
        text = template.format(d=parsed.description, D=parsed.description, q=_lower_first(stripped))
    elif phrasing == "named_last":
        text = _refer(parsed.ask, f"the {parsed.description}", rng)
    elif phrasing == "one_party":
        party = _casual(rng.choice(parsed.parties or (parsed.title,)), rng)
        reference = rng.choice(["our contract with {p}", "the agreement with {p}", "the {p} contract",
                                "the {t} with {p}", "the deal with {p}"])
        text = _refer(parsed.ask, reference.format(p=party, t=parsed.title.lower()), rng)
    elif phrasing == "short_name":
        short = _short_name(rng.choice(parsed.parties or (parsed.title,)), rng)
        kind = _kind(parsed.title, rng)
        reference = rng.choice(["the {s} {k}", "the {k} with {s}", "{s}'s {k}"])
        text = _refer(parsed.ask, reference.format(s=short, k=kind).replace("'s's", "'s"), rng)
    else:
        raise ValueError(f"unknown phrasing {phrasing!r}")
    return _typing_style(text, rng)


def _refer(ask: str, reference: str, rng: random.Random) -> str:
    """The clause question about `reference` instead of "this contract"."""
    match = _THIS.search(ask)
    if match is None:
        return f"{ask.rstrip('?')} in {reference}?"
    preposition = match.group().split()[0].lower()
    if preposition in {"in", "under"}:
        preposition = rng.choice([preposition, preposition, "in"])
    lead = "" if preposition == "this" else f"{preposition} "
    return ask[:match.start()] + lead + reference + ask[match.end():]


def _without_reference(ask: str) -> str:
    """The clause question without its reference to the contract: dropped where it is a complement ("for
    this contract"), "it" where it is the subject ("Can this contract be terminated")."""
    text = _THIS.sub(lambda m: "it" if m.group().lower().startswith("this") else "", ask)
    return re.sub(r"\s+", " ", text).replace(" ?", "?").strip()


def _casual(party: str, rng: random.Random) -> str:
    """A party as people write it: often without the legal form ("Acme" for "Acme, Inc.")."""
    if rng.random() < 0.5:
        words = party.replace(",", " ").split()
        while len(words) > 1 and _SUFFIX.match(words[-1]):
            words.pop()
        return " ".join(words)
    return party


def _short_name(party: str, rng: random.Random) -> str:
    """A short name for a party: its first word or two ("Ginares" for "GINARES GROUP AG", "Papa John's"
    for "Papa John's International, Inc."), never its legal form."""
    words = [w.strip(",") for w in party.split() if w.lower() not in {"the", "a"}]
    words = [w for w in words if not re.fullmatch(r"(?:[A-Z]\.)+", w)] or words
    words = [w for w in words if not _SUFFIX.match(w)] or words
    if "of" in words[:2]:
        words = words[words.index("of") + 1:] or words  # "Town of Vinton" -> "Vinton"
    count = 2 if len(words) > 1 and (len(words[0]) <= 3 or words[1] == "&" or rng.random() < 0.5) else 1
    if count == 2 and words[1] == "&" and len(words) > 2:
        count = 3
    short = " ".join(words[:count])
    return short.title() if short.isupper() and len(short) > 4 else short


def _kind(title: str, rng: random.Random) -> str:
    words = title.lower().split()
    options = [" ".join(words[-2:]) if len(words) >= 2 else title.lower(), words[-1] if words else "contract",
               "contract", "deal"]
    return rng.choice(options)


def _typing_style(text: str, rng: random.Random) -> str:
    """Some people type without the question mark, some in lower case."""
    roll = rng.random()
    if roll < 0.2:
        return text.rstrip("?").rstrip()
    if roll < 0.3:
        return text.lower()
    return text


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2].isupper() is False else text
