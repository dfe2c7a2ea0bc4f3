"""Sans-IO tests of the JSON-RPC layer (clef/jsonrpc.py, clef/external_api.py) and the frame codec.

No processes here: these are the parsers that face untrusted bytes (callers on HTTP/IPC, the UI
on stdio, a compromised worker on the socketpair), so they are fuzzed with hypothesis.
"""

from __future__ import annotations

import contextlib
import json
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clef import jsonrpc
from clef.errors import (
    ClefError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    ProtocolViolation,
)
from clef.external_api import METHODS, check_call
from sandbox.frames import MAX_FRAME, FrameDecoder, decode_body, encode_frame

# --- strategies ---------------------------------------------------------------------------------

# Text that stresses a brace-counting splitter: braces, brackets, quotes and escapes inside strings.
tricky_text = st.text(alphabet=st.sampled_from(list('{}[]"\\ \n\tab\u00e9\u2603\U0001f600:,')),
                      max_size=20)
json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | tricky_text | \
    st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children,
                                                                       max_size=4),
    max_leaves=12,
)
# Top-level messages on a stream are objects or arrays (what geth's stream decoder reads).
json_messages = st.dictionaries(tricky_text, json_values, max_size=5) | \
    st.lists(json_values, max_size=5)
separators = st.sampled_from(["", "\n", " ", "\r\n", "\t\n  "])


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for point in points:
        out.append(data[last:point])
        last = point
    out.append(data[last:])
    return out


def _feed_all(splitter: jsonrpc.StreamSplitter, pieces: list[bytes]) -> list[bytes]:
    out: list[bytes] = []
    for piece in pieces:
        out.extend(splitter.feed(piece))
    return out


# --- loads / dumps ------------------------------------------------------------------------------


def test_loads_accepts_plain_json() -> None:
    assert jsonrpc.loads(b'{"a":[1,2,{"b":null}]}') == {"a": [1, 2, {"b": None}]}
    assert jsonrpc.loads('"x"') == "x"


@pytest.mark.parametrize("raw", [b"NaN", b"[Infinity]", b'{"a":-Infinity}'])
def test_loads_rejects_non_standard_constants(raw: bytes) -> None:
    with pytest.raises(ParseError):
        jsonrpc.loads(raw)


@pytest.mark.parametrize("raw", [b"", b"{", b'{"a":}', b"\xff\xfe", b'{"a":1}x', b"[1,]"])
def test_loads_rejects_malformed(raw: bytes) -> None:
    with pytest.raises(ParseError):
        jsonrpc.loads(raw)


def test_loads_bounds_nesting_depth() -> None:
    ok = "[" * jsonrpc.MAX_DEPTH + "]" * jsonrpc.MAX_DEPTH
    assert jsonrpc.loads(ok) is not None
    deep = "[" * (jsonrpc.MAX_DEPTH + 1) + "]" * (jsonrpc.MAX_DEPTH + 1)
    with pytest.raises(ParseError, match="nested deeper"):
        jsonrpc.loads(deep)
    # Far deeper than Python's recursion limit: still a clean ParseError, never RecursionError.
    with pytest.raises(ParseError):
        jsonrpc.loads("[" * 200_000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = json.dumps({"s": "[" * 500 + "{" * 500})
    assert jsonrpc.loads(text) == {"s": "[" * 500 + "{" * 500}


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert jsonrpc.dumps({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


@given(json_values)
def test_dumps_loads_round_trip(value: Any) -> None:
    assert jsonrpc.loads(jsonrpc.dumps(value)) == value


@given(st.binary(max_size=200))
def test_loads_only_raises_parse_error_on_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        jsonrpc.loads(data)


def _reference_depth(text: str) -> int:
    """A character-by-character state machine: the oracle for nesting_depth on valid JSON."""
    depth = best = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


class _Refused(Exception):
    pass


def _refuse(detail: str) -> _Refused:
    return _Refused(detail)


@settings(max_examples=300)
@given(json_values, st.booleans(), st.sampled_from([None, 1]))
def test_nesting_depth_is_exact_on_valid_json(value: Any, ascii_only: bool,
                                              indent: int | None) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    assert jsonrpc.nesting_depth(text) == _reference_depth(text)


@settings(max_examples=500)
@given(tricky_text | st.text(max_size=40))
def test_nesting_depth_never_under_counts_what_the_parser_reads(text: str) -> None:
    # Before the first error the text is a valid JSON prefix, where the oracle is exact.
    try:
        json.loads(text)
        read = text
    except json.JSONDecodeError as exc:
        read = text[: exc.pos]
    except RecursionError:  # pragma: no cover - inputs here are shallow
        read = text
    assert jsonrpc.nesting_depth(text) >= _reference_depth(read)


def test_loads_bounded_reports_through_the_callers_error() -> None:
    ok = "[" * 8 + "]" * 8
    assert jsonrpc.loads_bounded(ok, max_depth=8, error=_refuse) == json.loads(ok)
    cases = [
        (b"[" * 9 + b"]" * 9, "JSON nested deeper than 8 levels"),
        (b'{"a":1,"a":2}', "duplicate key 'a'"),
        (b"[NaN]", "invalid JSON constant NaN"),
        (b'"\xff"', "JSON is not valid UTF-8"),
        (b"[1,]", "Expecting value"),
    ]
    for raw, detail in cases:
        with pytest.raises(_Refused, match=detail):
            jsonrpc.loads_bounded(raw, max_depth=8, error=_refuse)
    with pytest.raises(_Refused, match=r"^bad bytes$"):
        jsonrpc.loads_bounded(b"\xff", max_depth=8, error=_refuse, invalid_utf8="bad bytes")
    with pytest.raises(KeyError, match="k"):
        jsonrpc.loads_bounded('{"k":1,"k":1}', max_depth=8, error=_refuse, duplicate=KeyError)
    # A repeated key is refused at any depth, even with the same value.
    with pytest.raises(_Refused, match="duplicate key 'b'"):
        jsonrpc.loads_bounded('[{"x":{"b":1,"b":1}}]', max_depth=8, error=_refuse)


@given(st.binary(max_size=200) | st.text(max_size=200), st.integers(min_value=0, max_value=8))
def test_loads_bounded_only_raises_the_callers_error(data: bytes | str, depth: int) -> None:
    with contextlib.suppress(_Refused):
        jsonrpc.loads_bounded(data, max_depth=depth, error=_refuse)


# --- StreamSplitter -----------------------------------------------------------------------------


def test_splitter_several_messages_in_one_feed() -> None:
    splitter = jsonrpc.StreamSplitter()
    assert splitter.feed(b'{"a":1}{"b":2}\n[3]  {"c":"}"}') == \
        [b'{"a":1}', b'{"b":2}', b"[3]", b'{"c":"}"}']


def test_splitter_message_split_across_feeds() -> None:
    splitter = jsonrpc.StreamSplitter()
    assert splitter.feed(b'{"method":"a') == []
    assert splitter.feed(b'ccount_list","x":"\\') == []
    assert splitter.feed(b'"}"}\n{') == [b'{"method":"account_list","x":"\\"}"}']
    assert splitter.feed(b"}") == [b"{}"]


def test_splitter_escaped_backslash_before_quote() -> None:
    # "\\" ends the string; the following brace closes the object.
    splitter = jsonrpc.StreamSplitter()
    assert splitter.feed(b'{"a":"\\\\"}{"b":1}') == [b'{"a":"\\\\"}', b'{"b":1}']


@pytest.mark.parametrize("raw", [b"1", b'"str"', b"null", b"x{}", b"}"])
def test_splitter_rejects_non_container_start(raw: bytes) -> None:
    with pytest.raises(ParseError):
        jsonrpc.StreamSplitter().feed(raw)


def test_splitter_whitespace_only_yields_nothing() -> None:
    splitter = jsonrpc.StreamSplitter()
    assert splitter.feed(b" \n\r\n\t") == []
    assert splitter.feed(b"{}") == [b"{}"]


def test_splitter_caps_an_unterminated_message() -> None:
    splitter = jsonrpc.StreamSplitter(max_message=1000)
    splitter.feed(b'{"a":"' + b"x" * 900)
    with pytest.raises(ParseError, match="exceeds"):
        splitter.feed(b"x" * 200)


def test_splitter_caps_a_complete_oversized_message_in_one_feed() -> None:
    splitter = jsonrpc.StreamSplitter(max_message=1000)
    with pytest.raises(ParseError, match="exceeds"):
        splitter.feed(b'{"a":"' + b"x" * 2000 + b'"}')


def test_splitter_allows_many_small_messages_beyond_the_cap_in_total() -> None:
    splitter = jsonrpc.StreamSplitter(max_message=100)
    messages = splitter.feed(b'{"a":1}' * 500)
    assert len(messages) == 500


@settings(max_examples=200)
@given(st.lists(json_messages, min_size=1, max_size=6), st.lists(separators, min_size=6,
                                                                   max_size=6),
       st.lists(st.integers(min_value=0), max_size=8))
def test_splitter_recovers_every_message_however_the_stream_is_cut(
        messages: list[Any], seps: list[str], cuts: list[int]) -> None:
    stream = b"".join(sep.encode() + json.dumps(m, ensure_ascii=False).encode()
                      for m, sep in zip(messages, seps, strict=False)) + b"\n"
    out = _feed_all(jsonrpc.StreamSplitter(), _chunks(stream, cuts))
    assert [json.loads(o) for o in out] == messages


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=5))
def test_splitter_only_raises_parse_error_on_garbage(data: bytes, cuts: list[int]) -> None:
    splitter = jsonrpc.StreamSplitter(max_message=256)
    try:
        for piece in _chunks(data, cuts):
            for message in splitter.feed(piece):
                assert message[:1] in (b"{", b"[")
                assert len(message) <= 256
    except ParseError:
        pass


# --- request envelopes --------------------------------------------------------------------------


def test_parse_single_request() -> None:
    batch = jsonrpc.parse_message(b'{"jsonrpc":"2.0","id":1,"method":"account_list","params":[]}',
                                  batch_limit=1000)
    assert not batch.is_batch
    assert batch.items == [jsonrpc.Request("account_list", [], 1)]


def test_parse_notification_and_null_or_missing_params() -> None:
    batch = jsonrpc.parse_message(b'{"jsonrpc":"2.0","method":"m"}', batch_limit=None)
    item = batch.items[0]
    assert isinstance(item, jsonrpc.Request)
    assert item.is_notification and item.params == []
    batch = jsonrpc.parse_message(b'{"jsonrpc":"2.0","id":null,"method":"m","params":null}',
                                  batch_limit=None)
    item = batch.items[0]
    assert isinstance(item, jsonrpc.Request)
    assert not item.is_notification and item.id is None and item.params == []


def test_object_params_are_flagged_for_non_array_args() -> None:
    batch = jsonrpc.parse_message(b'{"jsonrpc":"2.0","id":"a","method":"m","params":{"x":1}}',
                                  batch_limit=None)
    item = batch.items[0]
    assert isinstance(item, jsonrpc.Request) and item.params_was_object
    with pytest.raises(InvalidParams, match="non-array args"):
        check_call("account_list", item.params, item.params_was_object)


@pytest.mark.parametrize("obj", [
    {"id": 1, "method": "m"},                                    # no jsonrpc
    {"jsonrpc": "1.0", "id": 1, "method": "m"},
    {"jsonrpc": "2.0", "id": 1},                                 # no method
    {"jsonrpc": "2.0", "id": 1, "method": ""},
    {"jsonrpc": "2.0", "id": 1, "method": 5},
    {"jsonrpc": "2.0", "id": True, "method": "m"},
    {"jsonrpc": "2.0", "id": [1], "method": "m"},
    {"jsonrpc": "2.0", "id": {"a": 1}, "method": "m"},
    {"jsonrpc": "2.0", "id": 1, "method": "m", "params": "x"},
    {"jsonrpc": "2.0", "id": 1, "method": "m", "params": 3},
    [],
    "str",
    7,
    None,
])
def test_invalid_envelopes(obj: Any) -> None:
    raw = json.dumps(obj)
    if obj == []:
        with pytest.raises(InvalidRequest, match="empty batch"):
            jsonrpc.parse_message(raw, batch_limit=None)
        return
    batch = jsonrpc.parse_message(raw, batch_limit=None)
    assert not batch.is_batch
    assert isinstance(batch.items[0], InvalidRequest)
    assert batch.items[0].code == -32600


def test_batch_keeps_per_item_errors_and_ids() -> None:
    raw = json.dumps([{"jsonrpc": "2.0", "id": 1, "method": "a"}, {"id": 2}, 5,
                      {"jsonrpc": "2.0", "method": "n"}])
    batch = jsonrpc.parse_message(raw, batch_limit=1000)
    assert batch.is_batch
    assert batch.ids == [1, 2, None, None]
    assert isinstance(batch.items[0], jsonrpc.Request)
    assert isinstance(batch.items[1], InvalidRequest)
    assert isinstance(batch.items[2], InvalidRequest)
    item = batch.items[3]
    assert isinstance(item, jsonrpc.Request) and item.is_notification


def test_batch_limits() -> None:
    one = {"jsonrpc": "2.0", "id": 1, "method": "a"}
    assert len(jsonrpc.parse_message(json.dumps([one] * 1000), batch_limit=1000).items) == 1000
    with pytest.raises(InvalidRequest, match="batch too large"):
        jsonrpc.parse_message(json.dumps([one] * 1001), batch_limit=1000)
    assert len(jsonrpc.parse_message(json.dumps([one] * 5000), batch_limit=None).items) == 5000
    with pytest.raises(InvalidRequest, match="empty batch"):
        jsonrpc.parse_message(b"[]", batch_limit=None)


def test_parse_message_parse_error() -> None:
    with pytest.raises(ParseError) as info:
        jsonrpc.parse_message(b'{"jsonrpc":', batch_limit=None)
    assert info.value.code == -32700


@given(json_values)
def test_parse_message_never_crashes_on_any_json(value: Any) -> None:
    try:
        batch = jsonrpc.parse_message(json.dumps(value), batch_limit=10)
    except ClefError:
        return
    assert len(batch.items) == len(batch.ids)
    for item in batch.items:
        assert isinstance(item, jsonrpc.Request | ClefError)


@given(st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "extra"]),
                       json_values | st.just("2.0") | st.just("account_list")))
def test_parse_request_object_is_total(obj: dict[str, Any]) -> None:
    try:
        request = jsonrpc.parse_request_object(obj)
    except InvalidRequest:
        return
    assert obj["jsonrpc"] == "2.0"
    assert isinstance(request.method, str) and request.method
    assert isinstance(request.params, list)


def test_response_shapes() -> None:
    assert jsonrpc.result_response(3, ["0xab"]) == {"jsonrpc": "2.0", "id": 3, "result": ["0xab"]}
    assert jsonrpc.error_response(None, ParseError("bad")) == \
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "bad"}}
    assert jsonrpc.error_response("x", {"code": -32000, "message": "request denied"}) == \
        {"jsonrpc": "2.0", "id": "x", "error": {"code": -32000, "message": "request denied"}}


# --- method table and arity (geth's texts) ------------------------------------------------------


def test_check_call_texts() -> None:
    with pytest.raises(MethodNotFound, match=r"^the method ui_approveTx does not exist/is not "
                                             r"available$"):
        check_call("ui_approveTx", [])
    with pytest.raises(MethodNotFound):
        check_call("clef_listAccounts", [])
    with pytest.raises(InvalidParams, match=r"^too many arguments, want at most 0$"):
        check_call("account_list", [1])
    with pytest.raises(InvalidParams, match=r"^missing value for required argument 0$"):
        check_call("account_ecRecover", [])
    with pytest.raises(InvalidParams, match=r"^missing value for required argument 1$"):
        check_call("account_ecRecover", ["0x00", None])
    assert check_call("account_signTransaction", [{}]) == [{}, None]


def test_no_internal_or_ui_method_is_external() -> None:
    assert not [m for m in METHODS if m.startswith(("ui_", "clef_"))]


# --- inter-process frames -----------------------------------------------------------------------

frame_messages = st.dictionaries(st.text(max_size=8), json_values, max_size=5)


def test_frame_wire_format() -> None:
    frame = encode_frame({"t": "ready"})
    assert frame == struct.pack(">I", len(b'{"t":"ready"}')) + b'{"t":"ready"}'
    assert FrameDecoder().feed(frame) == [{"t": "ready"}]


@settings(max_examples=150)
@given(st.lists(frame_messages, max_size=6), st.lists(st.integers(min_value=0), max_size=10))
def test_frames_round_trip_however_cut(messages: list[dict[str, Any]], cuts: list[int]) -> None:
    stream = b"".join(encode_frame(m) for m in messages)
    decoder = FrameDecoder()
    out: list[dict[str, Any]] = []
    for piece in _chunks(stream, cuts):
        out.extend(decoder.feed(piece))
    assert out == messages


def test_frame_length_above_cap_is_a_violation_before_the_body_arrives() -> None:
    decoder = FrameDecoder(max_frame=100)
    with pytest.raises(ProtocolViolation, match="too large"):
        decoder.feed(struct.pack(">I", 101))
    with pytest.raises(ProtocolViolation):
        FrameDecoder().feed(struct.pack(">I", MAX_FRAME + 1))


def test_encode_refuses_oversized_frames() -> None:
    with pytest.raises(ProtocolViolation):
        encode_frame({"x": "a" * (MAX_FRAME + 1)})


@pytest.mark.parametrize("body", [b"[1]", b'"s"', b"null", b"\xff", b'{"a":NaN}', b"{", b""])
def test_non_object_or_malformed_bodies_are_violations(body: bytes) -> None:
    with pytest.raises(ProtocolViolation):
        decode_body(body)
    with pytest.raises(ProtocolViolation):
        FrameDecoder().feed(struct.pack(">I", len(body)) + body)


@given(st.binary(max_size=64), st.lists(st.integers(min_value=0), max_size=4))
def test_frame_decoder_only_raises_protocol_violation(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame=1024)
    try:
        for piece in _chunks(data, cuts):
            for message in decoder.feed(piece):
                assert isinstance(message, dict)
    except ProtocolViolation:
        pass
