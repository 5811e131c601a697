"""An SQS message on the native queues: how its body maps to a native payload and back, what is kept with it
(its message attributes, deduplication id, trace header), its MD5 digests as SQS computes them, and
its receipt handles.

The body rule (docs/sqs.md): an SQS body is stored as the native payload that is that body as a JSON string
(``hello`` -> ``"hello"``); a native payload that is a JSON string is received over SQS as that string, and any
other payload as its JSON text (``{"a":1}``). So a body sent over SQS is received unchanged over either API.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from typing import Any

import msgspec

from broker.sqs import errors as sqs_errors

MAX_MESSAGE_BYTES = 262_144  # body and attributes together (SQS's MaximumMessageSize default)
MAX_ATTRIBUTES = 10
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}\Z")
_DATA_TYPE = re.compile(r"^(String|Number|Binary)(\.[^\x00-\x1f]{1,250})?\Z")
# Characters SQS accepts in a body: #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF.
_INVALID_BODY = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Attribute(msgspec.Struct, array_like=True, frozen=True):
    """A message attribute as kept: its data type and its string value or its binary value (base64)."""

    data_type: str
    string_value: str | None = None
    binary_value: str | None = None


class Extra(msgspec.Struct, omit_defaults=True, frozen=True):
    """What is kept with a message sent over SQS (the message's F_EXTRA bytes, JSON)."""

    a: dict[str, Attribute] = {}  # message attributes
    d: str | None = None          # MessageDeduplicationId
    t: str | None = None          # AWSTraceHeader


_decode_extra = msgspec.json.Decoder(Extra).decode
NO_EXTRA = Extra()


def payload_of(body: str) -> bytes:
    return _encode(body)


def body_of(payload: bytes) -> str:
    if payload[:1] == b'"':
        if payload[-1:] == b'"' and b"\\" not in payload:  # no escapes: the text is between the quotes
            return payload[1:-1].decode()
        value = _decode(payload)
        if isinstance(value, str):
            return value
    return payload.decode()


def extra_of(raw: bytes) -> Extra:
    if not raw:
        return NO_EXTRA
    try:
        return _decode_extra(raw)
    except msgspec.DecodeError:
        return NO_EXTRA


def encode_extra(extra: Extra) -> bytes:
    """The stored bytes; a message with nothing to keep stores none (and keeps the stored form of a native one)."""
    if not extra.a and extra.d is None and extra.t is None:
        return b""
    return _encode(extra)


def check_body(body: Any) -> str:
    if type(body) is str and body.isascii() and body.isprintable() and body:
        return body  # printable ASCII: all SQS's characters (the usual body, checked without the expression)
    if not isinstance(body, str) or body == "":
        raise sqs_errors.missing_parameter("MessageBody") if body is None else sqs_errors.invalid_parameter(
            "The request must contain a non-empty message body.")
    if _INVALID_BODY.search(body):
        raise sqs_errors.SqsError(
            "InvalidMessageContents", "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | "
            "#x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF", code="InvalidMessageContents")
    return body


def md5_of_body(body: str | bytes) -> str:
    """MD5OfMessageBody: of the body's UTF-8 bytes (given as the text or as those bytes)."""
    return hashlib.md5(body.encode() if isinstance(body, str) else body, usedforsecurity=False).hexdigest()


def _binary(value: str, name: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise sqs_errors.invalid_parameter(f"Message attribute {name} has an invalid binary value.") from None


def md5_of_attributes(attributes: dict[str, Attribute]) -> str:
    """SQS's digest: for each attribute in name order, the name, the data type (each as a 4-byte big-endian
    length and the UTF-8 bytes), a transport byte (1 string, 2 binary) and the value (length and bytes)."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        attribute = attributes[name]
        for text in (name, attribute.data_type):
            data = text.encode()
            digest.update(struct.pack(">I", len(data)) + data)
        if attribute.binary_value is not None:
            value = _binary(attribute.binary_value, name)
            digest.update(b"\x02" + struct.pack(">I", len(value)) + value)
        else:
            value = (attribute.string_value or "").encode()
            digest.update(b"\x01" + struct.pack(">I", len(value)) + value)
    return digest.hexdigest()


def check_attributes(given: Any, system: bool = False) -> dict[str, Attribute]:
    """The MessageAttributes (or MessageSystemAttributes) of a request, validated as SQS does."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise sqs_errors.invalid_parameter("MessageAttributes must be a map.")
    if len(given) > MAX_ATTRIBUTES:
        raise sqs_errors.invalid_parameter(f"Number of message attributes [{len(given)}] exceeds the allowed "
                                           f"maximum [{MAX_ATTRIBUTES}].")
    found: dict[str, Attribute] = {}
    for name, value in given.items():
        if system and name != "AWSTraceHeader":
            raise sqs_errors.invalid_parameter(f"Message system attribute name '{name}' is invalid.")
        if not _ATTRIBUTE_NAME.match(name) or name.startswith(".") or name.endswith(".") or ".." in name or (
                name.lower().startswith(("aws.", "amazon.")) and not system):
            raise sqs_errors.invalid_parameter(f"Message attribute name '{name}' is invalid.")
        if not isinstance(value, dict):
            raise sqs_errors.invalid_parameter(f"Message attribute '{name}' must have a value.")
        data_type = value.get("DataType")
        if not isinstance(data_type, str) or not _DATA_TYPE.match(data_type):
            raise sqs_errors.invalid_parameter(f"The message attribute '{name}' has an invalid message attribute "
                                               "type, the set of supported type prefixes is Binary, Number, and "
                                               "String.")
        string_value, binary_value = value.get("StringValue"), value.get("BinaryValue")
        if value.get("StringListValues") or value.get("BinaryListValues"):
            raise sqs_errors.invalid_parameter(f"Message attribute '{name}': list values are not supported.")
        if data_type.startswith("Binary"):
            if not isinstance(binary_value, str) or not _binary(binary_value, name):
                raise sqs_errors.invalid_parameter(f"The message attribute '{name}' with type 'Binary' must use "
                                                   "field 'Binary'.")
            found[name] = Attribute(data_type, binary_value=binary_value)
            continue
        if not isinstance(string_value, str) or string_value == "":
            raise sqs_errors.invalid_parameter(f"The message attribute '{name}' must contain non-empty message "
                                               "attribute value for message attribute type "
                                               f"'{data_type.split('.')[0]}'.")
        if data_type.startswith("Number"):
            try:
                float(string_value)
            except ValueError:
                raise sqs_errors.invalid_parameter(f"Can't cast the value of message attribute '{name}' to a "
                                                   "number.") from None
        if _INVALID_BODY.search(string_value):
            raise sqs_errors.invalid_parameter(f"Message attribute '{name}' has invalid characters.")
        found[name] = Attribute(data_type, string_value=string_value)
    return found


def attributes_size(attributes: dict[str, Attribute]) -> int:
    size = 0
    for name, attribute in attributes.items():
        size += len(name.encode()) + len(attribute.data_type.encode())
        if attribute.binary_value is not None:
            size += len(base64.b64decode(attribute.binary_value))
        else:
            size += len((attribute.string_value or "").encode())
    return size


def wire_attributes(attributes: dict[str, Attribute]) -> dict[str, dict[str, str]]:
    out = {}
    for name, attribute in attributes.items():
        item = {"DataType": attribute.data_type}
        if attribute.binary_value is not None:
            item["BinaryValue"] = attribute.binary_value
        else:
            item["StringValue"] = attribute.string_value or ""
        out[name] = item
    return out


def select_attributes(attributes: dict[str, Attribute], names: list[str]) -> dict[str, Attribute]:
    """The attributes ReceiveMessage's MessageAttributeNames asks for: ``All``/``.*``, names, ``prefix.*``."""
    if not names or not attributes:
        return {}
    if "All" in names or ".*" in names:
        return attributes
    chosen = {}
    for name, attribute in attributes.items():
        for wanted in names:
            if name == wanted or (wanted.endswith(".*") and name.startswith(wanted[:-1])):
                chosen[name] = attribute
                break
    return chosen


# --- receipt handles ------------------------------------------------------------------------------------------
def receipt_handle(queue: str, message_id: str, receipt: str) -> str:
    """A handle names the queue, the message and its lease (the native receipt, whose MAC proves the lease):
    ``queue~message_id~receipt``; none of the three can hold ``~``."""
    return f"{queue}~{message_id}~{receipt}"


def read_receipt_handle(handle: Any, queue: str) -> tuple[str, str]:
    """(message id, native receipt) of a handle given for ``queue``, or raise ReceiptHandleIsInvalid."""
    if not isinstance(handle, str) or len(handle) > 1024:
        raise sqs_errors.receipt_handle_invalid(str(handle or ""))
    parts = handle.split("~")
    if len(parts) != 3 or parts[0] != queue or not parts[1] or not parts[2] or len(parts[1]) > 64:
        raise sqs_errors.receipt_handle_invalid(handle)
    return parts[1], parts[2]
