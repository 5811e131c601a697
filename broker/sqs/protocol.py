"""SQS's two wire protocols, read into one shape and written back.

- JSON (current SDKs): ``POST`` with ``X-Amz-Target: AmazonSQS.<Action>`` and an
  ``application/x-amz-json-1.0`` body; errors are ``{"__type", "message"}`` with the query-protocol code in the
  ``x-amzn-query-error`` header (``<code>;Sender``), which SDKs read.
- Query (older SDKs): ``Action=<Action>&...`` form-encoded (in the body or the URL), the lists and maps
  flattened (``Attribute.1.Name``, ``MessageAttribute.1.Value.StringValue``, ``SendMessageBatchRequestEntry.2.Id``);
  answers are XML ``<ActionResponse><ActionResult>...``.

Both are read into the JSON protocol's parameters (the member names of botocore's SQS model), so the actions
see one shape; a result is a dict in that shape, written as JSON or as the query protocol's XML.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import msgspec

from broker.sqs import errors as sqs_errors

JSON_CONTENT_TYPE = "application/x-amz-json-1.0"
XML_CONTENT_TYPE = "text/xml"
XML_NAMESPACE = "http://queue.amazonaws.com/doc/2012-11-05/"
TARGET_PREFIX = "AmazonSQS."

#: Query-protocol member name -> (JSON member name, kind): "map" of Name/Value (or Key/Value) entries, "list".
_QUERY_MEMBERS: dict[str, tuple[str, str]] = {
    "Attribute": ("Attributes", "map"),
    "MessageAttribute": ("MessageAttributes", "map"),
    "MessageSystemAttribute": ("MessageSystemAttributes", "map"),
    "Tag": ("Tags", "map"),
    "Tags": ("Tags", "map"),
    "AttributeName": ("AttributeNames", "list"),
    "MessageAttributeName": ("MessageAttributeNames", "list"),
    "MessageSystemAttributeName": ("MessageSystemAttributeNames", "list"),
    "TagKey": ("TagKeys", "list"),
    "SendMessageBatchRequestEntry": ("Entries", "list"),
    "DeleteMessageBatchRequestEntry": ("Entries", "list"),
    "ChangeMessageVisibilityBatchRequestEntry": ("Entries", "list"),
    "StringListValue": ("StringListValues", "list"),
    "BinaryListValue": ("BinaryListValues", "list"),
}

_decode_json = msgspec.json.Decoder().decode
_encode_json = msgspec.json.Encoder().encode


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        params = _decode_json(body) if body.strip() else {}
    except msgspec.DecodeError:
        raise sqs_errors.SqsError("SerializationException", "The request body is not valid JSON.") from None
    if not isinstance(params, dict):
        raise sqs_errors.SqsError("SerializationException", "The request body must be a JSON object.")
    return params


def _tree(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Flattened ``A.1.B=v`` pairs as nested dicts (numbers stay keys, turned into lists by ``_normalise``)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return root


def _indexed(node: Any) -> list[Any]:
    if not isinstance(node, dict):
        return [node]
    try:
        return [node[k] for k in sorted(node, key=int)]
    except ValueError:
        raise sqs_errors.invalid_parameter("A list parameter has a member that is not numbered.") from None


def _normalise(node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in node.items():
        member, kind = _QUERY_MEMBERS.get(name, (name, ""))
        if kind == "list":
            out[member] = [_normalise(v) if isinstance(v, dict) else v for v in _indexed(value)]
        elif kind == "map":
            mapped: dict[str, Any] = {}
            for entry in _indexed(value):
                if not isinstance(entry, dict):
                    raise sqs_errors.invalid_parameter(f"{name} entries need a name and a value.")
                key = entry.get("Name", entry.get("Key"))
                if not isinstance(key, str):
                    raise sqs_errors.invalid_parameter(f"{name} entries need a name.")
                item = entry.get("Value", "")
                mapped[key] = _normalise(item) if isinstance(item, dict) else item
            out[member] = mapped
        elif isinstance(value, dict):
            out[member] = _normalise(value)
        else:
            out[member] = value
    return out


def parse_query(form: bytes) -> tuple[str, dict[str, Any]]:
    """(action, parameters in the JSON protocol's shape) of a query-protocol request."""
    pairs = parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True)
    pairs = [(k, v) for k, v in pairs if not k.startswith("X-Amz-") and k not in ("Version", "Action")]
    action = dict(parse_qsl(form.decode("utf-8", "replace"))).get("Action", "")
    return action, _normalise(_tree(pairs))


# --- answers ---------------------------------------------------------------------------------------------
def json_body(result: dict[str, Any]) -> bytes:
    return _encode_json(result)


def json_error(error: sqs_errors.SqsError) -> tuple[bytes, dict[str, str]]:
    body = _encode_json({"__type": f"com.amazonaws.sqs#{error.name}", "message": error.message})
    fault = "Sender" if error.sender else "Receiver"
    return body, {"x-amzn-query-error": f"{error.code};{fault}"}


#: JSON member -> (element of each item, item layout) in the query protocol's XML.
_XML_MEMBERS: dict[str, tuple[str, str]] = {
    "Attributes": ("Attribute", "map:Name"),
    "MessageAttributes": ("MessageAttribute", "map:Name"),
    "Tags": ("Tag", "map:Key"),
    "QueueUrls": ("QueueUrl", "list"),
    "queueUrls": ("QueueUrl", "list"),
    "Messages": ("Message", "list"),
    "Failed": ("BatchResultErrorEntry", "list"),
    "Results": ("ListMessageMoveTasksResultEntry", "list"),
    "StringListValues": ("StringListValue", "list"),
    "BinaryListValues": ("BinaryListValue", "list"),
}


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value), _XML_CONTROL)


#: Characters an XML reader would change (a carriage return reads as a newline), written as references.
_XML_CONTROL = {"\r": "&#xD;"}


def _xml(members: dict[str, Any], entry_name: str) -> str:
    out = []
    for name, value in members.items():
        element, layout = _XML_MEMBERS.get(name, ("", ""))
        if name == "Successful":
            element, layout = entry_name, "list"
        if layout.startswith("map:"):
            key_name = layout[4:]
            for key, item in value.items():
                inner = _xml(item, entry_name) if isinstance(item, dict) else _xml_value(item)
                out.append(f"<{element}><{key_name}>{escape(key)}</{key_name}><Value>{inner}</Value></{element}>")
        elif layout == "list":
            for item in value:
                inner = _xml(item, entry_name) if isinstance(item, dict) else _xml_value(item)
                out.append(f"<{element}>{inner}</{element}>")
        elif isinstance(value, dict):
            out.append(f"<{name}>{_xml(value, entry_name)}</{name}>")
        else:
            out.append(f"<{name}>{_xml_value(value)}</{name}>")
    return "".join(out)


def xml_body(action: str, result: dict[str, Any], request_id: str) -> bytes:
    inner = _xml(result, f"{action}ResultEntry")
    result_part = f"<{action}Result>{inner}</{action}Result>" if inner else ""
    return (
        f'<?xml version="1.0"?><{action}Response xmlns="{XML_NAMESPACE}">{result_part}'
        f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    ).encode()


def xml_error(error: sqs_errors.SqsError, request_id: str) -> bytes:
    fault = "Sender" if error.sender else "Receiver"
    return (
        f'<?xml version="1.0"?><ErrorResponse xmlns="{XML_NAMESPACE}"><Error><Type>{fault}</Type>'
        f"<Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message><Detail/></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    ).encode()
