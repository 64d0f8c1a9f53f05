"""Decode (and encode) Kubernetes protobuf request bodies for the local cluster.

The real ``kubectl`` sends typed writes (``kubectl create namespace``, ``create deployment``,
``run``, ``expose``...) as ``application/vnd.kubernetes.protobuf``: the 4-byte magic
``k8s\\x00`` followed by a ``runtime.Unknown`` envelope whose ``raw`` bytes hold the typed
message (see the Kubernetes API concepts page, "Protobuf encoding"). The cluster stores JSON, so
this module turns such a body back into the object's Kubernetes JSON form.

Trade-offs:

* No ``protoc`` and no generated classes: a plain wire-format reader walks the bytes guided by
  ``protobuf_fields.json``, a table of field numbers, JSON names and types generated from the
  ``generated.proto`` files of kubernetes/api and kubernetes/apimachinery. Unknown fields are
  skipped, as protobuf requires, so a newer kubectl that sends a field the table lacks still
  works (the field is lost, not the request).
* The JSON produced is what Go's ``encoding/json`` would print for the decoded struct:
  embedded structs are inlined (``LocalObjectReference``, ``VolumeSource``, ``ProbeHandler``),
  ``metav1.Time`` becomes RFC 3339 seconds and ``MicroTime`` RFC 3339 microseconds,
  ``IntOrString`` and ``Quantity`` become their scalar forms, bytes become base64 (Secret
  ``data``), and zero scalars are dropped the way ``omitempty`` drops them unless the field is a
  Go pointer or required (flag ``z`` in the table: ``replicas: 0`` and ``runAsUser: 0`` mean
  something). Go's protobuf marshaller writes every non-pointer field even when empty, so
  without this rule a ``kubectl create namespace`` would store ``selfLink: ""``.
* :func:`encode` is the inverse and exists so tests (and a future protobuf response) build
  bodies from the same table; it writes every field present in the JSON.

NB: only the kinds listed under ``kinds`` in the table decode; anything else is a clear
``BadRequest`` asking for JSON, never a half-decoded object.
"""

from __future__ import annotations

import base64
import contextvars
import datetime
import functools
import json
import struct
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from typing import Any, Final

from syrup.cluster import errors

MAGIC: Final = b"k8s\x00"
CONTENT_TYPE: Final = "application/vnd.kubernetes.protobuf"

_TABLE_FILE: Final = "protobuf_fields.json"
_UNKNOWN: Final = "runtime.Unknown"
_EPOCH_ZERO_GO: Final = -62135596800  # time.Time{}.Unix(): Go's zero time
_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
_MAX_EMBED_DEPTH: Final = 8
_EMBED_DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("_EMBED_DEPTH", default=0)

# Wire types (protobuf encoding spec).
_VARINT: Final = 0
_FIXED64: Final = 1
_LEN: Final = 2
_FIXED32: Final = 5

_VARINT_SCALARS: Final = frozenset({"int32", "int64", "uint32", "uint64", "bool"})


class Label(Enum):
    """How a field repeats: once, as a list, or as a map of string keys."""

    OPTIONAL = "opt"
    REPEATED = "rep"
    MAP = "map"


class Special(Enum):
    """Messages whose JSON form is a scalar rather than an object."""

    NONE = ""
    TIME = "meta.Time"
    MICRO_TIME = "meta.MicroTime"
    INT_OR_STRING = "intstr.IntOrString"
    QUANTITY = "resource.Quantity"
    RAW_EXTENSION = "runtime.RawExtension"
    FIELDS_V1 = "meta.FieldsV1"


_SPECIALS: Final = {s.value: s for s in Special if s is not Special.NONE}


# Decoding dispatch codes; the order matters: codes from _C_STRING on are scalars whose zero
# value omitempty drops, and _C_BOOL.._C_UINT are the varint-encoded ones.
_C_MESSAGE: Final = 0
_C_SPECIAL: Final = 1
_C_STRING: Final = 2
_C_BYTES: Final = 3
_C_BOOL: Final = 4
_C_INT32: Final = 5
_C_INT64: Final = 6
_C_UINT: Final = 7
_C_DOUBLE: Final = 8
_C_FLOAT: Final = 9
_SCALAR_CODES: Final = {
    "string": _C_STRING,
    "bytes": _C_BYTES,
    "bool": _C_BOOL,
    "int32": _C_INT32,
    "int64": _C_INT64,
    "uint32": _C_UINT,
    "uint64": _C_UINT,
    "double": _C_DOUBLE,
    "float": _C_FLOAT,
}
_OPTIONAL: Final = 0
_REPEATED: Final = 1
_MAP: Final = 2
_LABEL_CODES: Final = {Label.OPTIONAL: _OPTIONAL, Label.REPEATED: _REPEATED, Label.MAP: _MAP}

# What the hot decoding loop reads per field number: (json name, label code, type code,
# message or map-entry message, inline, keep zero).
_Wire = tuple[str, int, int, "Message", bool, bool]


@dataclass(eq=False)
class Message:
    """One protobuf message: its qualified name, fields by number, and its decoding table."""

    name: str
    fields: dict[int, Field] = field(default_factory=dict)
    special: Special = Special.NONE
    wire: dict[int, _Wire] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Field:
    """One field of a message, resolved against the table."""

    number: int
    name: str
    label: Label
    scalar: str | None  # None when the field holds a message
    message: Message | None
    inline: bool
    keep_zero: bool

    def wire_spec(self) -> _Wire:
        """The tuple the decoding loop uses; map fields point at a synthetic entry message."""
        if self.message is None:
            code = _SCALAR_CODES[self.scalar or ""]
        else:
            code = _C_MESSAGE if self.message.special is Special.NONE else _C_SPECIAL
        label = _LABEL_CODES[self.label]
        sub = self.message or _NO_MESSAGE
        if label != _MAP:
            return (self.name, label, code, sub, self.inline, self.keep_zero)
        entry = Message(f"{self.name}-entry")
        entry.wire = {
            1: ("k", _OPTIONAL, _C_STRING, _NO_MESSAGE, False, True),
            2: ("v", _OPTIONAL, code, sub, False, True),
        }
        return (self.name, _MAP, code, entry, False, True)


# Stands in for "no message" in decoding tuples of scalar fields, so the tuple stays typed.
_NO_MESSAGE: Final = Message("<scalar>")


@dataclass(frozen=True)
class Schema:
    """The loaded table: every message, and which message each apiVersion/kind uses."""

    messages: dict[str, Message]
    kinds: dict[str, Message]

    def kind(self, api_version: str, kind: str) -> Message | None:
        return self.kinds.get(f"{api_version}/{kind}")


class _Malformed(Exception):
    """Internal: bad wire data, with the field path collected while unwinding."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str] = []


@functools.cache
def schema() -> Schema:
    """Load ``protobuf_fields.json`` once and link message references into a graph."""
    raw = json.loads(resources.files("syrup.cluster").joinpath(_TABLE_FILE).read_text())
    messages = {
        name: Message(name, special=_SPECIALS.get(name, Special.NONE)) for name in raw["messages"]
    }

    # Link in a second pass so recursive and forward references resolve to the same objects.
    for name, fields in raw["messages"].items():
        msg = messages[name]
        for number, (json_name, label, typ, flags) in fields.items():
            sub = messages.get(typ)
            msg.fields[int(number)] = Field(
                number=int(number),
                name=json_name,
                label=Label(label),
                scalar=None if sub is not None else typ,
                message=sub,
                inline="i" in flags,
                keep_zero="z" in flags,
            )
    for msg in messages.values():
        msg.wire = {number: f.wire_spec() for number, f in msg.fields.items()}
    kinds = {key: messages[name] for key, name in raw["kinds"].items()}
    return Schema(messages=messages, kinds=kinds)


# -- decoding ----------------------------------------------------------------------------------


def decode(body: bytes) -> dict[str, Any]:
    """Turn a Kubernetes protobuf body into the object's JSON form (apiVersion, kind, ...).

    Raises :class:`errors.BadRequest` naming the kind and field when the body is malformed,
    compressed, or of a type this server does not know.
    """
    if not body.startswith(MAGIC):
        raise errors.BadRequest(
            "the protobuf request body does not start with the Kubernetes magic 'k8s\\x00'"
        )

    # The envelope first: it names the type of the raw bytes.
    try:
        api_version, kind, raw, encoding = _envelope(body)
    except _Malformed as exc:
        raise errors.BadRequest(
            f"malformed protobuf envelope (runtime.Unknown): {exc.reason}"
        ) from exc
    if not api_version or not kind:
        raise errors.BadRequest("the protobuf envelope does not name an apiVersion and kind")
    if encoding:
        raise errors.BadRequest(
            f"protobuf body for {api_version} {kind} uses contentEncoding {encoding!r}, "
            "which this server does not support"
        )
    message = schema().kind(api_version, kind)
    if message is None:
        raise errors.BadRequest(
            f"cannot decode a protobuf body of type {api_version} {kind}: the type is not known "
            "to this server; send it as application/json"
        )

    # Then the typed message itself.
    try:
        obj = _decode_message(raw, 0, len(raw), message)
    except _Malformed as exc:
        where = ".".join(reversed(exc.path)) or "<top>"
        raise errors.BadRequest(
            f"malformed protobuf body for {api_version} {kind} at {where}: {exc.reason}",
            kind=kind,
        ) from exc
    return {"apiVersion": api_version, "kind": kind, **obj}


def _envelope(body: bytes) -> tuple[str, str, bytes, str]:
    """Read runtime.Unknown {1 typeMeta {1 apiVersion, 2 kind}, 2 raw, 3 contentEncoding}."""
    api_version = kind = encoding = ""
    raw = b""
    pos, end = len(MAGIC), len(body)
    while pos < end:
        key, pos = _varint(body, pos, end)
        if key & 7 != _LEN:
            pos = _skip(body, pos, end, key & 7)
            continue
        length, pos = _varint(body, pos, end)
        stop = pos + length
        if stop > end:
            raise _Malformed(f"field {key >> 3} runs past the end of the body")
        number = key >> 3
        if number == 1:
            meta = _decode_message(body, pos, stop, schema().messages["runtime.TypeMeta"])
            api_version = str(meta.get("apiVersion", ""))
            kind = str(meta.get("kind", ""))
        elif number == 2:
            raw = body[pos:stop]
        elif number == 3:
            encoding = body[pos:stop].decode("utf-8", errors="replace")
        pos = stop
    return api_version, kind, raw, encoding


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Malformed(f"truncated varint at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed(f"varint longer than 10 bytes at byte {pos}")


def _skip(buf: bytes, pos: int, end: int, wire: int) -> int:
    """Step over a field this table does not know, as protobuf readers must."""
    if wire == _VARINT:
        return _varint(buf, pos, end)[1]
    if wire == _FIXED64:
        stop = pos + 8
    elif wire == _FIXED32:
        stop = pos + 4
    elif wire == _LEN:
        length, pos = _varint(buf, pos, end)
        stop = pos + length
    else:
        raise _Malformed(f"unsupported wire type {wire} at byte {pos}")
    if stop > end:
        raise _Malformed(f"field runs past the end of its message at byte {pos}")
    return stop


def _decode_message(buf: bytes, pos: int, end: int, msg: Message) -> dict[str, Any]:
    """Decode ``buf[pos:end]`` as ``msg``: the hot loop, so dispatch is on small ints."""
    out: dict[str, Any] = {}
    wire_table = msg.wire
    while pos < end:
        # Keys and lengths are almost always one byte; skip the general varint call for them.
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos, end)
        spec = wire_table.get(key >> 3)
        wire = key & 7
        if spec is None:
            pos = _skip(buf, pos, end, wire)
            continue
        name, label, code, sub, inline, keep_zero = spec
        try:
            if wire == _LEN:
                length = buf[pos] if pos < end else 0x80
                if length < 0x80:
                    pos += 1
                else:
                    length, pos = _varint(buf, pos, end)
                stop = pos + length
                if stop > end:
                    raise _Malformed(f"length {length} runs past the end of its message")
                if label == _MAP:
                    map_key, value = _decode_map_entry(buf, pos, stop, spec)
                    out.setdefault(name, {})[map_key] = value
                    pos = stop
                    continue
                if code == _C_STRING:
                    value = buf[pos:stop].decode("utf-8")
                elif code == _C_MESSAGE:
                    value = _decode_message(buf, pos, stop, sub)
                elif code == _C_SPECIAL:
                    value = _special(sub, _decode_message(buf, pos, stop, sub))
                elif code == _C_BYTES:
                    value = base64.b64encode(buf[pos:stop]).decode("ascii")
                elif label == _REPEATED:
                    out.setdefault(name, []).extend(_packed(buf, pos, stop, code))
                    pos = stop
                    continue
                else:
                    raise _Malformed("got length-delimited data for a number")
                pos = stop
            elif wire == _VARINT and _C_BOOL <= code <= _C_UINT and pos < end and buf[pos] < 0x80:
                # Small non-negative numbers and booleans: one byte, no call.
                value = buf[pos] if code != _C_BOOL else buf[pos] != 0
                pos += 1
            else:
                value, pos = _number(buf, pos, end, wire, code)
        except _Malformed as exc:
            exc.path.append(name)
            raise
        except UnicodeDecodeError as exc:
            malformed = _Malformed("string is not valid UTF-8")
            malformed.path.append(name)
            raise malformed from exc

        if label == _REPEATED:
            out.setdefault(name, []).append(value)
        elif inline:
            out.update(value)
        elif value is None or (not value and code >= _C_STRING and not keep_zero):
            # Go's omitempty drops zero scalars; a zero Time marshals to nothing at all.
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _number(buf: bytes, pos: int, end: int, wire: int, code: int) -> tuple[Any, int]:
    """A varint or fixed-width scalar, checked against the field's declared type."""
    if wire == _VARINT:
        if code < _C_BOOL or code > _C_UINT:
            raise _Malformed("got a varint for a field that is not an integer or boolean")
        raw, pos = _varint(buf, pos, end)
        return _from_varint(raw, code), pos
    if wire == _FIXED64 and code == _C_DOUBLE:
        size, fmt = 8, "<d"
    elif wire == _FIXED32 and code == _C_FLOAT:
        size, fmt = 4, "<f"
    else:
        raise _Malformed(f"wire type {wire} does not match the field's type")
    if pos + size > end:
        raise _Malformed("truncated fixed-width value")
    return struct.unpack_from(fmt, buf, pos)[0], pos + size


def _from_varint(raw: int, code: int) -> int | bool:
    if code == _C_BOOL:
        return raw != 0
    if code == _C_INT32:
        raw &= 0xFFFFFFFF
        return raw - (1 << 32) if raw >= 1 << 31 else raw
    if code == _C_INT64:
        raw &= 0xFFFFFFFFFFFFFFFF
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    return raw


def _packed(buf: bytes, pos: int, stop: int, code: int) -> list[Any]:
    """A packed repeated number (proto3 style; accepted as every proto2 reader does)."""
    wire = _VARINT if code <= _C_UINT else _FIXED64 if code == _C_DOUBLE else _FIXED32
    values: list[Any] = []
    while pos < stop:
        value, pos = _number(buf, pos, stop, wire, code)
        values.append(value)
    return values


def _decode_map_entry(buf: bytes, pos: int, stop: int, spec: _Wire) -> tuple[str, Any]:
    """A map entry is a small message {1: key, 2: value}; keys are strings in Kubernetes."""
    entry_message = spec[3]
    entry = _decode_message(buf, pos, stop, entry_message)
    if "v" in entry:
        return str(entry.get("k", "")), entry["v"]
    _, _, code, sub, _, _ = entry_message.wire[2]
    return str(entry.get("k", "")), _zero(code, sub)


def _zero(code: int, sub: Message) -> Any:
    """The JSON value of an absent map value (proto2 map values default to zero)."""
    if code in (_C_STRING, _C_BYTES):
        return ""
    if code == _C_BOOL:
        return False
    if code == _C_MESSAGE:
        return {}
    if code == _C_SPECIAL:
        return _special(sub, {})
    return 0


def _special(msg: Message, value: dict[str, Any]) -> Any:
    """The scalar JSON form of Time, MicroTime, IntOrString, Quantity and raw JSON holders."""
    kind = msg.special
    if kind in (Special.TIME, Special.MICRO_TIME):
        seconds = int(value.get("seconds", 0))
        nanos = int(value.get("nanos", 0))
        if (seconds == 0 and nanos == 0) or seconds == _EPOCH_ZERO_GO:
            return None
        try:
            moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise _Malformed(f"timestamp {seconds} is out of range") from exc
        if kind is Special.TIME:
            return moment.strftime(_TIME_FORMAT)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    if kind is Special.INT_OR_STRING:
        return value.get("strVal", "") if value.get("type") == 1 else value.get("intVal", 0)
    if kind is Special.QUANTITY:
        return value.get("string") or "0"
    raw_b64 = value.get("raw") if kind is Special.RAW_EXTENSION else value.get("Raw")
    if not raw_b64:
        return None
    raw = base64.b64decode(raw_b64)
    if kind is Special.RAW_EXTENSION and raw.startswith(MAGIC):
        # An embedded object may itself be protobuf (runtime.RawExtension carries either);
        # only these nest without a bound in the schema, so their depth is capped.
        depth = _EMBED_DEPTH.get()
        if depth >= _MAX_EMBED_DEPTH:
            raise _Malformed(f"embedded objects nest more than {_MAX_EMBED_DEPTH} deep")
        token = _EMBED_DEPTH.set(depth + 1)
        try:
            return decode(raw)
        except errors.BadRequest as exc:
            raise _Malformed(f"embedded object: {exc.message}") from exc
        finally:
            _EMBED_DEPTH.reset(token)
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise _Malformed("embedded raw object is neither JSON nor Kubernetes protobuf") from exc


# -- encoding ----------------------------------------------------------------------------------


def encode(obj: dict[str, Any]) -> bytes:
    """Encode a Kubernetes JSON object as kubectl would send it (magic + runtime.Unknown).

    Every field present in ``obj`` is written, zero or not (proto2: present when sent).
    Raises :class:`errors.BadRequest` when the kind is unknown or a value has the wrong type.
    """
    api_version = str(obj.get("apiVersion", ""))
    kind = str(obj.get("kind", ""))
    tables = schema()
    message = tables.kind(api_version, kind)
    if message is None:
        raise errors.BadRequest(f"cannot encode {api_version} {kind} as protobuf: unknown type")
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
    try:
        raw = _encode_message(body, message)
    except (TypeError, ValueError) as exc:
        raise errors.BadRequest(f"cannot encode {api_version} {kind} as protobuf: {exc}") from exc
    envelope = {
        "typeMeta": {"apiVersion": api_version, "kind": kind},
        "raw": base64.b64encode(raw).decode("ascii"),
        "contentEncoding": "",
        "contentType": "",
    }
    return MAGIC + _encode_message(envelope, tables.messages[_UNKNOWN])


def _put_varint(out: bytearray, value: int) -> None:
    value &= 0xFFFFFFFFFFFFFFFF  # negative ints are ten-byte two's complement
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _put_len(out: bytearray, number: int, payload: bytes) -> None:
    _put_varint(out, number << 3 | _LEN)
    _put_varint(out, len(payload))
    out += payload


def _encode_message(obj: dict[str, Any], msg: Message) -> bytes:
    out = bytearray()
    for number, f in sorted(msg.fields.items()):
        if f.inline:
            assert f.message is not None
            _put_len(out, number, _encode_message(obj, f.message))
            continue
        if f.name not in obj or obj[f.name] is None:
            continue
        value = obj[f.name]
        if f.label is Label.MAP:
            for key in sorted(value):
                entry = bytearray()
                _put_len(entry, 1, str(key).encode())
                _encode_value(entry, 2, value[key], f)
                _put_len(out, number, bytes(entry))
        elif f.label is Label.REPEATED:
            for item in value:
                _encode_value(out, number, item, f)
        else:
            _encode_value(out, number, value, f)
    return bytes(out)


def _encode_value(out: bytearray, number: int, value: Any, f: Field) -> None:
    if f.message is not None:
        if f.message.special is not Special.NONE:
            value = _unspecial(f.message.special, value)
        _put_len(out, number, _encode_message(value, f.message))
        return
    scalar = f.scalar
    if scalar == "string":
        _put_len(out, number, str(value).encode("utf-8"))
    elif scalar == "bytes":
        _put_len(out, number, base64.b64decode(value, validate=True))
    elif scalar in _VARINT_SCALARS:
        if not isinstance(value, int):
            raise TypeError(f"{f.name} must be an integer or boolean, not {value!r}")
        _put_varint(out, number << 3 | _VARINT)
        _put_varint(out, int(value))
    elif scalar == "double":
        _put_varint(out, number << 3 | _FIXED64)
        out += struct.pack("<d", float(value))
    elif scalar == "float":
        _put_varint(out, number << 3 | _FIXED32)
        out += struct.pack("<f", float(value))
    else:
        raise ValueError(f"{f.name} has an unknown scalar type {scalar}")


def _unspecial(kind: Special, value: Any) -> dict[str, Any]:
    """The message form of a scalar JSON value (inverse of :func:`_special`)."""
    if kind in (Special.TIME, Special.MICRO_TIME):
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return {"seconds": int(moment.timestamp()), "nanos": moment.microsecond * 1000}
    if kind is Special.INT_OR_STRING:
        if isinstance(value, str):
            return {"type": 1, "intVal": 0, "strVal": value}
        return {"type": 0, "intVal": int(value), "strVal": ""}
    if kind is Special.QUANTITY:
        return {"string": str(value)}
    raw = base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode("ascii")
    return {"raw": raw} if kind is Special.RAW_EXTENSION else {"Raw": raw}
