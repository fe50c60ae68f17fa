"""The llama.cpp adapter against the real stand-in Gemma 3 270M GGUF (no mocks)."""

from __future__ import annotations

import hashlib
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from docs_app.adapters.llm import (
    GEMMA_TURNS,
    GGUF_TEMPLATE,
    LanguageModel,
    LlamaCppModel,
    file_sha256_cached,
    gguf_standin_ensure,
)
from docs_app.pipeline.prompt import ChatMessage

MESSAGES = [
    ChatMessage(role="system", content="Answer briefly."),
    ChatMessage(role="user", content="Name three colours."),
]

# Gemma 3's chat template as published with the instruct models, reduced to string contents.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}"
    "{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


@pytest.fixture(scope="session")
def standin_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf_standin_ensure(target=tmp_path_factory.mktemp("models") / "standin.gguf")


@pytest.fixture(scope="module")
def no_network() -> Iterator[None]:
    """Stricter than the suite's netguard: the model may open no socket at all, not even to loopback.
    Module-scoped so the rest of the suite keeps its Redis and Chroma connections."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("network use attempted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket.socket, "connect_ex", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture(scope="module")
def model(standin_gguf: Path, no_network: None) -> LlamaCppModel:
    return LlamaCppModel(model_path=standin_gguf, context_tokens=2048, threads=2, gpu_layers=0)


def gguf_with_string_metadata(source: Path, target: Path, *, key: str, value: str) -> Path:
    """Copy a GGUF (v2/v3) adding one string key: the stand-in has no chat template, the
    production model does, and both paths must run for real."""
    fixed = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    data = source.read_bytes()

    def skip_string(pos: int) -> int:
        (length,) = struct.unpack_from("<Q", data, pos)
        return pos + 8 + int(length)

    def skip_value(pos: int, value_type: int) -> int:
        if value_type in fixed:
            return pos + fixed[value_type]
        if value_type == 8:
            return skip_string(pos)
        element_type, count = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if element_type in fixed:
            return pos + fixed[element_type] * int(count)
        for _ in range(count):
            pos = skip_value(pos, element_type)
        return pos

    magic, version, tensor_count, kv_count = struct.unpack_from("<4sIQQ", data, 0)
    assert magic == b"GGUF" and version in (2, 3)
    pos = kvs_start = 24
    for _ in range(kv_count):
        pos = skip_string(pos)
        (value_type,) = struct.unpack_from("<I", data, pos)
        pos = skip_value(pos + 4, value_type)
    kvs_end = pos
    for _ in range(tensor_count):
        pos = skip_string(pos)
        (n_dims,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 8 * n_dims + 4 + 8
    infos_end = pos
    alignment = 32  # the stand-in sets no general.alignment
    data_start = -(-infos_end // alignment) * alignment

    def string(text: str) -> bytes:
        raw = text.encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw

    head = (
        struct.pack("<4sIQQ", magic, version, tensor_count, kv_count + 1)
        + data[kvs_start:kvs_end]
        + string(key)
        + struct.pack("<I", 8)
        + string(value)
        + data[kvs_end:infos_end]
    )
    padding = b"\0" * (-len(head) % alignment)
    target.write_bytes(head + padding + data[data_start:])
    return target


@pytest.fixture(scope="module")
def templated_gguf(standin_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf_with_string_metadata(
        standin_gguf,
        tmp_path_factory.mktemp("templated") / "templated.gguf",
        key="tokenizer.chat_template",
        value=GEMMA3_TEMPLATE,
    )


def test_standin_is_assembled_atomically_and_only_once(standin_gguf: Path) -> None:
    assert standin_gguf.stat().st_size > 100_000_000
    assert not list(standin_gguf.parent.glob("*.part"))
    assert standin_gguf.stat().st_mode & 0o777 == 0o644
    mtime = standin_gguf.stat().st_mtime_ns
    assert gguf_standin_ensure(target=standin_gguf) == standin_gguf
    assert standin_gguf.stat().st_mtime_ns == mtime


def test_model_satisfies_the_protocol(model: LlamaCppModel) -> None:
    language_model: LanguageModel = model
    assert language_model.context_tokens == 2048


def test_stream_chat_yields_non_empty_pieces(model: LlamaCppModel) -> None:
    pieces = list(model.stream_chat(MESSAGES, max_tokens=16))
    assert len(pieces) >= 3
    assert all(pieces)


def test_count_tokens_counts_text_without_bos(model: LlamaCppModel) -> None:
    assert model.count_tokens("") == 0
    assert 1 <= model.count_tokens("hello world") <= 3
    assert model.count_tokens("word " * 200) >= 200


def test_turn_markers_in_text_stay_plain_text(model: LlamaCppModel) -> None:
    # As special tokens the two markers would be 2 tokens; as text they are many.
    assert model.count_tokens("<end_of_turn><start_of_turn>") > 2


def test_stand_in_has_no_gguf_template_so_gemma_turns_are_used(model: LlamaCppModel) -> None:
    assert model.describe()["chat_format"] == GEMMA_TURNS


def test_gemma_turns_match_gemmas_own_template(model: LlamaCppModel) -> None:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    conversation = [
        ChatMessage(role="system", content="Rules here."),
        ChatMessage(role="user", content="First question?"),
        ChatMessage(role="assistant", content="First answer."),
        ChatMessage(role="user", content='Sources:\n<source id="1">text</source>\n\nQuestion: q'),
    ]
    rendered = Jinja2ChatFormatter(template=GEMMA3_TEMPLATE, eos_token="<eos>", bos_token="<bos>")(
        messages=[{"role": m.role, "content": m.content} for m in conversation]  # type: ignore[misc]
    ).prompt
    llama = model._llama
    expected = llama.tokenize(rendered.encode(), add_bos=False, special=True)
    assert model._gemma_prompt_tokens(conversation) == expected
    assert expected[0] == llama.token_bos() and expected[1] != llama.token_bos()


def test_a_gguf_chat_template_is_used_when_present(templated_gguf: Path, no_network: None) -> None:
    templated = LlamaCppModel(model_path=templated_gguf, context_tokens=2048, threads=2, gpu_layers=0)
    assert templated.describe()["chat_format"] == GGUF_TEMPLATE
    pieces = list(templated.stream_chat(MESSAGES, max_tokens=16))
    assert len(pieces) >= 3
    assert all(pieces)


def test_describe_identifies_the_model_file(model: LlamaCppModel, standin_gguf: Path) -> None:
    description = model.describe()
    assert description["name"]
    assert description["path"] == str(standin_gguf)
    assert description["size_bytes"] == standin_gguf.stat().st_size
    assert description["sha256"] == hashlib.sha256(standin_gguf.read_bytes()).hexdigest()
    assert description["n_ctx"] == 2048


def test_sha256_sidecar_is_reused_while_size_and_mtime_match(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"first")
    first = file_sha256_cached(path)
    assert first == hashlib.sha256(b"first").hexdigest()
    assert (tmp_path / "m.gguf.sha256").is_file()

    sidecar = (tmp_path / "m.gguf.sha256").read_text()
    (tmp_path / "m.gguf.sha256").write_text(sidecar.replace(first, "f" * 64))
    assert file_sha256_cached(path) == "f" * 64  # served from the sidecar

    path.write_bytes(b"second, longer")
    assert file_sha256_cached(path) == hashlib.sha256(b"second, longer").hexdigest()


def test_concurrent_streams_are_serialised(model: LlamaCppModel) -> None:
    spans: dict[int, tuple[float, float]] = {}
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            times = [time.monotonic() for _ in model.stream_chat(MESSAGES, max_tokens=16)]
            spans[index] = (times[0], times[-1])
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    (_, first_end), (second_start, _) = sorted(spans.values())
    assert first_end < second_start  # one stream finished before the other yielded anything


def test_prompt_longer_than_the_context_raises_value_error(model: LlamaCppModel) -> None:
    too_long = [ChatMessage(role="user", content="word " * 3000)]
    with pytest.raises(ValueError):
        list(model.stream_chat(too_long, max_tokens=4))


def test_closing_a_stream_early_frees_the_model(model: LlamaCppModel) -> None:
    stream = model.stream_chat(MESSAGES, max_tokens=16)
    next(stream)
    stream.close()
    assert list(model.stream_chat(MESSAGES, max_tokens=4))
