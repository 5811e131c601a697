"""The SQS actions, each mapped onto the native store's methods (docs/sqs.md). An action takes the request's
environment and its parameters (the JSON protocol's shape, ``broker.sqs.protocol``) and returns its result in
that shape; failures are :class:`~broker.sqs.errors.SqsError` (the store's own errors are mapped at the edge).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import msgspec

from broker import errors
from broker.http.context import Context
from broker.schemas import CreateQueueRequest
from broker.sqs import attributes as queue_attributes
from broker.sqs import errors as sqs_errors
from broker.sqs import messages as sqs_messages
from broker.sqs.messages import Extra
from broker.store.queues import OutgoingMessage, message_enqueued_ms
from broker.store.sqs import QueueInfo, SqsStore

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}\Z")
FIFO_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,75}\.fifo\Z")
BATCH_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}\Z")
GROUP_OR_DEDUP_ID = re.compile(r"^[!-~]{1,128}\Z")
MAX_BATCH = 10
MAX_TAGS = 50
QUEUE_CACHE_SECONDS = 1.0
SYSTEM_ATTRIBUTES = ("All", "SenderId", "SentTimestamp", "ApproximateReceiveCount", "ApproximateFirstReceiveTimestamp",
                     "SequenceNumber", "MessageDeduplicationId", "MessageGroupId", "AWSTraceHeader",
                     "DeadLetterQueueSourceArn")


@dataclass
class Env:
    """One request: the shared context, the caller's project and access key, and how its queue URLs are written."""

    ctx: Context
    sqs: SqsStore
    cache: QueueCache
    project: str
    access_key_id: str
    base_url: str
    region: str
    path_queue: str | None = None

    def url(self, queue: str) -> str:
        return f"{self.base_url}/{self.project}/{queue}"


class QueueCache:
    """Queue configurations read by the message actions, kept ``QUEUE_CACHE_SECONDS`` per process (so a send or
    receive costs one store call); the SQS edge's own changes drop an entry at once."""

    def __init__(self, sqs: SqsStore):
        self.sqs = sqs
        self._entries: dict[tuple[str, str], tuple[QueueInfo, float]] = {}

    async def get(self, project: str, queue: str) -> QueueInfo:
        entry = self._entries.get((project, queue))
        now = time.monotonic()
        if entry is not None and entry[1] > now:
            return entry[0]
        info = await self.sqs.queue(project, queue)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[(project, queue)] = (info, now + QUEUE_CACHE_SECONDS)
        return info

    def drop(self, project: str, queue: str) -> None:
        self._entries.pop((project, queue), None)


# --- parameters -----------------------------------------------------------------------------------------------
def _int(params: dict[str, Any], name: str, low: int, high: int, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value) if not isinstance(value, bool) else -1
        if isinstance(value, float) and value != number:
            raise ValueError
    except (TypeError, ValueError):
        raise sqs_errors.invalid_parameter(f"Value {value} for parameter {name} is invalid. Reason: must be an "
                                           "integer.") from None
    if not low <= number <= high:
        raise sqs_errors.invalid_parameter(f"Value {value} for parameter {name} is invalid. Reason: must be between "
                                           f"{low} and {high}.")
    return number


def _str(params: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None:
        if required:
            raise sqs_errors.missing_parameter(name)
        return None
    if not isinstance(value, str):
        raise sqs_errors.invalid_parameter(f"Value for parameter {name} must be a string.")
    return value


def _list(params: dict[str, Any], name: str) -> list[Any]:
    value = params.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise sqs_errors.invalid_parameter(f"Value for parameter {name} must be a list.")
    return value


def queue_name_of(env: Env, params: dict[str, Any]) -> str:
    """The queue a request names by its QueueUrl (or the URL it was sent to); another project's is unknown."""
    url = _str(params, "QueueUrl")
    if url is None:
        if env.path_queue is None:
            raise sqs_errors.missing_parameter("QueueUrl")
        return env.path_queue
    cached = _URL_QUEUES.get((env.project, url))
    if cached is not None:
        return cached
    parts = [p for p in urlsplit(url).path.split("/") if p]
    if len(parts) != 2 or parts[0] != env.project:
        raise sqs_errors.queue_does_not_exist()
    name = parts[1]
    if not (QUEUE_NAME.match(name) or FIFO_QUEUE_NAME.match(name)):
        raise sqs_errors.queue_does_not_exist()
    if len(_URL_QUEUES) > 10_000:
        _URL_QUEUES.clear()
    _URL_QUEUES[(env.project, url)] = name
    return name


#: (project, QueueUrl) -> the queue it names: a URL is read once per process (the same few are sent every time).
_URL_QUEUES: dict[tuple[str, str], str] = {}


async def _changes_native(env: Env, name: str, native: dict[str, Any]) -> None:
    stored = {"visibility_timeout_default": "visibility", "message_retention_days": "retention_days",
              "dead_letter_queue": "dlq", "max_retries": "max_retries"}
    changes = {stored[k]: ("" if v is None else v) for k, v in native.items()}
    if changes.get("dlq") == name:
        raise sqs_errors.invalid_parameter("Value for parameter RedrivePolicy is invalid. Reason: a queue cannot be "
                                           "its own dead-letter queue.")
    if changes:
        await env.ctx.store.update_queue(env.project, name, changes, None, "")


def _tags(given: Any) -> dict[str, str]:
    if given is None:
        return {}
    if not isinstance(given, dict) or len(given) > MAX_TAGS:
        raise sqs_errors.invalid_parameter(f"Tags must be a map of at most {MAX_TAGS} tags.")
    for key, value in given.items():
        if not 1 <= len(key) <= 128 or not isinstance(value, str) or len(value) > 256:
            raise sqs_errors.invalid_parameter("Tag keys are 1 to 128 characters, values at most 256.")
    return {f"tag:{k}": v for k, v in given.items()}


def _check_fifo_only(changes: queue_attributes.Changes, fifo: bool) -> None:
    if not fifo:
        for name in ("ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"):
            if name in changes.sqs or name in changes.fixed:
                raise sqs_errors.invalid_attribute_name(name)


async def _check_redrive_allowed(env: Env, source: str, dead_letter_queue: str | None) -> None:
    """A RedrivePolicy's target must exist and allow ``source`` by its RedriveAllowPolicy (SQS's rule)."""
    if dead_letter_queue is None:
        return
    try:
        target = await env.sqs.queue(env.project, dead_letter_queue)
    except errors.QueueNotFound:
        raise sqs_errors.invalid_parameter("Value for parameter RedrivePolicy is invalid. Reason: Dead letter "
                                           "target does not exist.") from None
    queue_attributes.check_redrive_allowed(target, source, env.region, env.project)


# --- queues ---------------------------------------------------------------------------------------------------
async def create_queue(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = _str(params, "QueueName", required=True) or ""
    changes = queue_attributes.read_changes(params.get("Attributes"), env.region, env.project)
    fifo = bool(changes.fifo)
    if fifo and not FIFO_QUEUE_NAME.match(name):
        raise sqs_errors.invalid_parameter("The name of a FIFO queue can only include alphanumeric characters, "
                                           "hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in "
                                           "length.")
    if not fifo and not QUEUE_NAME.match(name):
        raise sqs_errors.invalid_parameter("Can only include alphanumeric characters, hyphens, or underscores. 1 to "
                                           "80 in length.")
    _check_fifo_only(changes, fifo)
    tags = _tags(params.get("Tags"))
    native = changes.native
    request = CreateQueueRequest(
        name=name, type="fifo" if fifo else "standard", dead_letter_queue=native.get("dead_letter_queue"),
        max_retries=native.get("max_retries", queue_attributes.NO_REDRIVE_MAX_RETRIES),
        message_retention_days=native.get("message_retention_days", 4),
        visibility_timeout_default=native.get("visibility_timeout_default", 30),
    )
    if request.dead_letter_queue == name:
        raise sqs_errors.invalid_parameter("Value for parameter RedrivePolicy is invalid. Reason: a queue cannot be "
                                           "its own dead-letter queue.")
    await _check_redrive_allowed(env, name, request.dead_letter_queue)
    record, created = await env.ctx.store.create_queue(env.project, request)
    if not created:
        info = await env.sqs.queue(env.project, name)
        differs = (record.type != request.type
                   or any(getattr(record, k) != v for k, v in native.items() if k != "dead_letter_queue")
                   or ("dead_letter_queue" in native and (record.dead_letter_queue or None) != native[
                       "dead_letter_queue"])
                   or any(info.sqs.get(k, _SQS_DEFAULTS.get(k)) != v for k, v in changes.sqs.items()))
        if differs:
            raise sqs_errors.SqsError("QueueNameExists", "A queue already exists with the same name and a different "
                                      "value for attribute(s).", code="QueueAlreadyExists")
        return {"QueueUrl": env.url(name)}
    fields = {**changes.sqs, **tags}
    if fields:
        await env.sqs.set_attributes(env.project, name, fields, ())
    return {"QueueUrl": env.url(name)}


_SQS_DEFAULTS = {"DelaySeconds": "0", "ReceiveMessageWaitTimeSeconds": "0", "MaximumMessageSize": "262144",
                 "ContentBasedDeduplication": "false"}


async def get_queue_url(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = _str(params, "QueueName", required=True) or ""
    owner = _str(params, "QueueOwnerAWSAccountId")
    if owner is not None and owner != env.project:
        raise sqs_errors.queue_does_not_exist()
    if not (QUEUE_NAME.match(name) or FIFO_QUEUE_NAME.match(name)):
        raise sqs_errors.queue_does_not_exist()
    await env.sqs.queue(env.project, name)
    return {"QueueUrl": env.url(name)}


def _token(after: str) -> str:
    return base64.urlsafe_b64encode(after.encode()).decode()


def _after(token: str | None) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, ValueError):
        raise sqs_errors.invalid_parameter("Invalid NextToken value.") from None


async def list_queues(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    prefix = _str(params, "QueueNamePrefix") or ""
    limit = _int(params, "MaxResults", 1, 1000)
    after = _after(_str(params, "NextToken"))
    names, more = await env.sqs.names(env.project, prefix, after, limit or 1000)
    result: dict[str, Any] = {}
    if names:
        result["QueueUrls"] = [env.url(n) for n in names]
    if more and limit is not None:
        result["NextToken"] = _token(names[-1])
    return result


async def delete_queue(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    if not await env.ctx.store.delete_queue(env.project, name):
        raise sqs_errors.queue_does_not_exist()
    env.cache.drop(env.project, name)
    return {}


async def purge_queue(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    await env.ctx.store.purge(env.project, queue_name_of(env, params), None, "")
    return {}


async def get_queue_attributes(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    names = queue_attributes.wanted(params.get("AttributeNames"))
    info = await env.sqs.queue(env.project, name)
    stats = await env.ctx.store.stats(env.project, name) if queue_attributes.needs_counts(names) else None
    found = queue_attributes.values(info, stats, names, env.region, env.project)
    return {"Attributes": found} if found else {}


async def set_queue_attributes(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    given = params.get("Attributes")
    if not given:
        raise sqs_errors.missing_parameter("Attributes")
    changes = queue_attributes.read_changes(given, env.region, env.project)
    info = await env.sqs.queue(env.project, name)
    if changes.fifo is not None and changes.fifo != info.fifo:
        raise sqs_errors.invalid_attribute_value("FifoQueue", "Reason: a queue's type cannot change.")
    _check_fifo_only(changes, info.fifo)
    if changes.native.get("dead_letter_queue") not in (None, name):
        await _check_redrive_allowed(env, name, changes.native["dead_letter_queue"])
    await _changes_native(env, name, changes.native)
    values = {**changes.sqs, "LastModifiedTimestamp": str(int(time.time()))}
    await env.sqs.set_attributes(env.project, name, values, changes.remove)
    env.cache.drop(env.project, name)
    return {}


async def tag_queue(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    tags = _tags(params.get("Tags"))
    if not tags:
        raise sqs_errors.missing_parameter("Tags")
    info = await env.sqs.queue(env.project, name)
    if len({k for k in info.sqs if k.startswith("tag:")} | set(tags)) > MAX_TAGS:
        raise sqs_errors.invalid_parameter(f"A queue has at most {MAX_TAGS} tags.")
    await env.sqs.set_attributes(env.project, name, tags, ())
    return {}


async def untag_queue(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    keys = _list(params, "TagKeys")
    if not keys:
        raise sqs_errors.missing_parameter("TagKeys")
    await env.sqs.set_attributes(env.project, name, {}, [f"tag:{k}" for k in keys])
    return {}


async def list_queue_tags(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    info = await env.sqs.queue(env.project, queue_name_of(env, params))
    tags = {k[4:]: v for k, v in info.sqs.items() if k.startswith("tag:")}
    return {"Tags": tags} if tags else {}


async def list_dead_letter_source_queues(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    await env.sqs.queue(env.project, name)
    limit = _int(params, "MaxResults", 1, 1000)
    after = _after(_str(params, "NextToken"))
    sources = [s for s in await env.sqs.dead_letter_sources(env.project, name) if s > after]
    page = sources[: limit or 1000]
    result: dict[str, Any] = {"queueUrls": [env.url(s) for s in page]}
    if limit is not None and len(sources) > len(page):
        result["NextToken"] = _token(page[-1])
    return result


# --- message move tasks (on the native redrive) ---------------------------------------------------------------
async def start_message_move_task(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    source = queue_attributes.arn_queue(_str(params, "SourceArn", required=True), env.region, env.project)
    destination = _str(params, "DestinationArn")
    _int(params, "MaxNumberOfMessagesPerSecond", 1, 500)
    await env.sqs.queue(env.project, source)
    origins = await env.sqs.dead_letter_sources(env.project, source)
    if destination is not None:
        target = queue_attributes.arn_queue(destination, env.region, env.project)
        if target not in origins:
            raise sqs_errors.invalid_parameter("DestinationArn must be a queue that uses the source as its "
                                               "dead-letter queue (moves go back to the original source queues).")
        origins = [target]
    if not origins:
        raise sqs_errors.invalid_parameter("Source queue must be configured as a Dead Letter Queue.")
    started = int(time.time() * 1000)
    moved = 0
    for origin in origins:
        moved += await env.ctx.store.redrive(env.project, origin, message_id=None, since_ms=None, max_messages=None,
                                             idempotency_key=None, fp="")
    handle = base64.urlsafe_b64encode(f"{source}\0{started}".encode()).decode()
    task = {"TaskHandle": handle, "Status": "COMPLETED", "SourceArn": params["SourceArn"],
            "ApproximateNumberOfMessagesMoved": moved, "ApproximateNumberOfMessagesToMove": moved,
            "StartedTimestamp": started}
    if destination is not None:
        task["DestinationArn"] = destination
    await env.sqs.set_attributes(env.project, source, {"MoveTask": json.dumps(task)}, ())
    return {"TaskHandle": handle}


async def list_message_move_tasks(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    source = queue_attributes.arn_queue(_str(params, "SourceArn", required=True), env.region, env.project)
    _int(params, "MaxResults", 1, 10)
    info = await env.sqs.queue(env.project, source)
    task = info.sqs.get("MoveTask")
    if task is None:
        return {"Results": []}
    entry = json.loads(task)
    entry.pop("TaskHandle", None)
    return {"Results": [entry]}


async def cancel_message_move_task(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    _str(params, "TaskHandle", required=True)
    raise sqs_errors.SqsError("ResourceNotFoundException", "Only a running task can be cancelled; move tasks here "
                              "complete before StartMessageMoveTask answers.")


# --- sending --------------------------------------------------------------------------------------------------
class Prepared(msgspec.Struct, frozen=True, gc=False):
    message: OutgoingMessage
    md5_of_body: str
    attributes: dict[str, sqs_messages.Attribute]
    system: dict[str, sqs_messages.Attribute]
    size: int  # the body and the attributes, as SQS counts them


_PLAIN = frozenset(("Id", "MessageBody", "QueueUrl"))
_NONE: dict[str, sqs_messages.Attribute] = {}


def _prepare(env: Env, info: QueueInfo, entry: dict[str, Any]) -> Prepared:
    """One message to send, validated and encoded (a body alone, to a standard queue, the short way)."""
    if not info.fifo and entry.keys() <= _PLAIN:
        body = sqs_messages.check_body(entry.get("MessageBody"))
        encoded = body.encode()
        size = len(encoded)
        if size > sqs_messages.MAX_MESSAGE_BYTES or "MaximumMessageSize" in info.sqs or "DelaySeconds" in info.sqs:
            return _prepare_fully(env, info, entry)
        return Prepared(OutgoingMessage(sqs_messages.payload_of(body)), sqs_messages.md5_of_body(encoded), _NONE,
                        _NONE, size)
    return _prepare_fully(env, info, entry)


def _prepare_fully(env: Env, info: QueueInfo, entry: dict[str, Any]) -> Prepared:
    body = sqs_messages.check_body(entry.get("MessageBody"))
    attributes = sqs_messages.check_attributes(entry.get("MessageAttributes"))
    system = sqs_messages.check_attributes(entry.get("MessageSystemAttributes"), system=True)
    limit = int(info.sqs.get("MaximumMessageSize", sqs_messages.MAX_MESSAGE_BYTES))
    size = len(body.encode()) + (sqs_messages.attributes_size(attributes) if attributes else 0)
    if size > limit:
        raise sqs_errors.invalid_parameter(f"One or more parameters are invalid. Reason: Message must be shorter "
                                           f"than {limit} bytes.")
    delay = _int(entry, "DelaySeconds", 0, 900)
    group = _str(entry, "MessageGroupId")
    dedup = _str(entry, "MessageDeduplicationId")
    fingerprint, key = "", None
    if info.fifo:
        if delay is not None:
            raise sqs_errors.invalid_parameter(f"Value {delay} for parameter DelaySeconds is invalid. Reason: The "
                                               "request include parameter that is not valid for this queue type.")
        if group is None:
            raise sqs_errors.missing_parameter("MessageGroupId")
        if not GROUP_OR_DEDUP_ID.match(group):
            raise sqs_errors.invalid_parameter("MessageGroupId can contain up to 128 alphanumeric and punctuation "
                                               "characters.")
        if dedup is None:
            if info.sqs.get("ContentBasedDeduplication") != "true":
                raise sqs_errors.invalid_parameter("The queue should either have ContentBasedDeduplication enabled "
                                                   "or MessageDeduplicationId provided explicitly")
            dedup = hashlib.sha256(body.encode()).hexdigest()
        elif not GROUP_OR_DEDUP_ID.match(dedup):
            raise sqs_errors.invalid_parameter("MessageDeduplicationId can contain up to 128 alphanumeric and "
                                               "punctuation characters.")
        # SQS's deduplication: the same id within 5 minutes returns the first message's id (lua/include/idem.lua).
        key = f"sqs:{info.name}:{dedup}"
        fingerprint = "sqs:" + hashlib.sha256(key.encode()).hexdigest()
    else:
        if dedup is not None:
            raise sqs_errors.invalid_parameter("Value for parameter MessageDeduplicationId is invalid. Reason: The "
                                               "request includes a parameter that is not valid for this queue type.")
        if delay is None:
            delay = int(info.sqs.get("DelaySeconds", "0"))
    extra = b""
    if attributes or system or dedup is not None:
        trace = system.get("AWSTraceHeader")
        extra = sqs_messages.encode_extra(Extra(a=attributes, d=dedup, t=trace.string_value if trace else None))
    message = OutgoingMessage(
        payload=sqs_messages.payload_of(body), delay_ms=(delay or 0) * 1000, group_id=group if info.fifo else None,
        fingerprint=fingerprint, idempotency_key=key, extra=extra,
    )
    return Prepared(message, sqs_messages.md5_of_body(body), attributes, system, size)


def sequence_number(message_id: str) -> str:
    return f"{int(message_id[11:], 16):020d}"


def _sent(prepared: Prepared, message_id: str, fifo: bool, entry_id: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"MessageId": message_id, "MD5OfMessageBody": prepared.md5_of_body}
    if entry_id is not None:
        result["Id"] = entry_id
    if prepared.attributes:
        result["MD5OfMessageAttributes"] = sqs_messages.md5_of_attributes(prepared.attributes)
    if prepared.system:
        result["MD5OfMessageSystemAttributes"] = sqs_messages.md5_of_attributes(prepared.system)
    if fifo:
        result["SequenceNumber"] = sequence_number(message_id)
    return result


async def send_message(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    info = await env.cache.get(env.project, name)
    prepared = _prepare(env, info, params)
    ids = await env.ctx.store.publish(env.project, name, [prepared.message], batch=False)
    return _sent(prepared, ids[0], info.fifo)


def _entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    entries = _list(params, "Entries")
    if not entries:
        raise sqs_errors.batch_error("EmptyBatchRequest", "There should be at least one entry in the request.")
    if len(entries) > MAX_BATCH:
        raise sqs_errors.batch_error("TooManyEntriesInBatchRequest",
                                     f"Maximum number of entries per request are {MAX_BATCH}. You have sent "
                                     f"{len(entries)}.")
    seen = set()
    for entry in entries:
        entry_id = entry.get("Id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, str) or not (
                (entry_id.isascii() and entry_id.isalnum() and len(entry_id) <= 80) or BATCH_ENTRY_ID.match(entry_id)):
            raise sqs_errors.batch_error("InvalidBatchEntryId", "A batch entry id can only contain alphanumeric "
                                         "characters, hyphens and underscores. It can be at most 80 letters long.")
        if entry_id in seen:
            raise sqs_errors.batch_error("BatchEntryIdsNotDistinct", f"Id {entry_id} repeated.")
        seen.add(entry_id)
    return entries


def _failed(entry_id: str, error: sqs_errors.SqsError) -> dict[str, Any]:
    return {"Id": entry_id, "SenderFault": error.sender, "Code": error.code, "Message": error.message}


def _plain_batch(info: QueueInfo, entries: list[dict[str, Any]]) -> tuple[list[OutgoingMessage], list[str]] | None:
    """The usual batch, in one loop: bodies of printable ASCII only, to a standard queue with the default size
    limit and delay, within the batch limit. Its messages and their MD5OfMessageBody, or None (then the entries
    are prepared one by one, which also says what is wrong)."""
    if info.fifo or "MaximumMessageSize" in info.sqs or "DelaySeconds" in info.sqs:
        return None
    messages, digests, total = [], [], 0
    md5, payload_of = hashlib.md5, sqs_messages.payload_of
    for entry in entries:
        body = entry.get("MessageBody")
        if not (type(body) is str and body and body.isascii() and body.isprintable() and entry.keys() <= _PLAIN):
            return None
        total += len(body)  # ASCII: as many bytes as characters
        messages.append(OutgoingMessage(payload_of(body)))
        digests.append(md5(body.encode(), usedforsecurity=False).hexdigest())
    return (messages, digests) if total <= sqs_messages.MAX_MESSAGE_BYTES else None


async def send_message_batch(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    entries = _entries(params)
    info = await env.cache.get(env.project, name)
    plain = _plain_batch(info, entries)
    if plain is not None:
        ids = await env.ctx.store.publish(env.project, name, plain[0], batch=True)
        return {"Successful": [{"Id": entry["Id"], "MessageId": mid, "MD5OfMessageBody": digest}
                               for entry, mid, digest in zip(entries, ids, plain[1], strict=True)], "Failed": []}
    prepared: list[tuple[str, Prepared]] = []
    failed = []
    total = 0
    for entry in entries:
        try:
            one = _prepare(env, info, entry)
        except sqs_errors.SqsError as exc:
            failed.append(_failed(entry["Id"], exc))
            body = entry.get("MessageBody")
            total += len(body.encode()) if isinstance(body, str) else 0
        else:
            prepared.append((entry["Id"], one))
            total += one.size
    if total > sqs_messages.MAX_MESSAGE_BYTES:
        raise sqs_errors.batch_error("BatchRequestTooLong", f"Batch requests cannot be longer than "
                                     f"{sqs_messages.MAX_MESSAGE_BYTES} bytes. You have sent {total} bytes.")
    successful = []
    if prepared:
        ids = await env.ctx.store.publish(env.project, name, [p.message for _, p in prepared], batch=True)
        successful = [_sent(p, mid, info.fifo, entry_id) for (entry_id, p), mid in zip(prepared, ids, strict=True)]
    return {"Successful": successful, "Failed": failed}


# --- receiving ------------------------------------------------------------------------------------------------
async def receive_message(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    count = _int(params, "MaxNumberOfMessages", 1, 10, 1) or 1
    visibility = _int(params, "VisibilityTimeout", 0, 43200)
    info = await env.cache.get(env.project, name)
    wait = _int(params, "WaitTimeSeconds", 0, 20)
    if wait is None:
        wait = int(info.sqs.get("ReceiveMessageWaitTimeSeconds", "0"))
    system_names = {str(n) for n in [*_list(params, "AttributeNames"), *_list(params, "MessageSystemAttributeNames")]}
    for wanted in system_names:
        if wanted not in SYSTEM_ATTRIBUTES and wanted not in queue_attributes.ALL:
            raise sqs_errors.invalid_attribute_name(wanted)
    if "All" in system_names:
        system_names = set(SYSTEM_ATTRIBUTES)
    attribute_names = [str(n) for n in _list(params, "MessageAttributeNames")]
    attempt = _str(params, "ReceiveRequestAttemptId")  # checked as SQS checks it, not used (docs/sqs.md)
    if attempt is not None and not GROUP_OR_DEDUP_ID.match(attempt):
        raise sqs_errors.invalid_parameter("ReceiveRequestAttemptId can contain up to 128 alphanumeric and "
                                           "punctuation characters.")
    if wait > 0 and env.ctx.long_polls is not None:
        env.ctx.long_polls.admit(env.project)
    visibility_ms = None if visibility is None else visibility * 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    waited = False
    while True:
        try:
            # charged once per ReceiveMessage, as a native long poll is
            found, wake_ms = await env.sqs.claim(env.project, name, count, visibility_ms, charged=not waited)
        except errors.Unavailable:
            if not waited:
                raise
            found, wake_ms = [], -1
        remaining = deadline - loop.time()
        if found or remaining <= 0:
            break
        timeout = remaining if wake_ms < 0 else min(remaining, max(0.005, (wake_ms - env.ctx.store.clock()) / 1000))
        await env.ctx.notifier.wait(env.project, name, timeout)
        waited = True
    now_ms = str(int(time.time() * 1000))
    messages = []
    body_of, md5_of_body, receipt_handle = sqs_messages.body_of, sqs_messages.md5_of_body, sqs_messages.receipt_handle
    for delivery in found:
        body = body_of(delivery.payload)
        message: dict[str, Any] = {
            "MessageId": delivery.message_id,
            "ReceiptHandle": receipt_handle(name, delivery.message_id, delivery.receipt),
            "MD5OfBody": md5_of_body(body),
            "Body": body,
        }
        if not system_names and not (delivery.extra and attribute_names):
            messages.append(message)  # the usual receive: the body and its handle only
            continue
        extra = sqs_messages.extra_of(delivery.extra)
        receives = delivery.receipt.split(".", 1)[0]
        if system_names:
            system = {
                "SenderId": env.project, "SentTimestamp": str(message_enqueued_ms(delivery.message_id)),
                "ApproximateReceiveCount": receives,
            }
            if receives == "1":
                system["ApproximateFirstReceiveTimestamp"] = now_ms
            if info.fifo:
                system["MessageGroupId"] = delivery.group_id or ""
                system["SequenceNumber"] = sequence_number(delivery.message_id)
                if extra.d:
                    system["MessageDeduplicationId"] = extra.d
            if extra.t:
                system["AWSTraceHeader"] = extra.t
            chosen_system = {k: v for k, v in system.items() if k in system_names}
            if chosen_system:
                message["Attributes"] = chosen_system
        chosen = sqs_messages.select_attributes(extra.a, attribute_names)
        if chosen:
            message["MD5OfMessageAttributes"] = sqs_messages.md5_of_attributes(chosen)
            message["MessageAttributes"] = sqs_messages.wire_attributes(chosen)
        messages.append(message)
    return {"Messages": messages} if messages else {}


async def delete_message(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    message_id, receipt = sqs_messages.read_receipt_handle(params.get("ReceiptHandle"), name)
    try:
        await env.ctx.store.ack(env.project, name, [(message_id, receipt)])
    except (errors.LeaseExpired, errors.MessageNotFound):
        pass  # SQS's rule for a stale handle: the call succeeds, the message is not deleted (docs/sqs.md)
    return {}


async def delete_message_batch(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    entries = _entries(params)
    await env.cache.get(env.project, name)
    valid: list[tuple[str, str, str]] = []
    failed = []
    for entry in entries:
        try:
            message_id, receipt = sqs_messages.read_receipt_handle(entry.get("ReceiptHandle"), name)
            valid.append((entry["Id"], message_id, receipt))
        except sqs_errors.SqsError as exc:
            failed.append(_failed(entry["Id"], exc))
    if valid:
        try:
            await env.ctx.store.ack(env.project, name, [(m, r) for _, m, r in valid], field="message_ids")
        except (errors.LeaseExpired, errors.MessageNotFound):
            for _, message_id, receipt in valid:  # one stale handle: the others one by one
                try:
                    await env.ctx.store.ack(env.project, name, [(message_id, receipt)])
                except (errors.LeaseExpired, errors.MessageNotFound):
                    pass
    return {"Successful": [{"Id": entry_id} for entry_id, _, _ in valid], "Failed": failed}


async def _change_visibility(env: Env, name: str, handle: Any, timeout: Any) -> None:
    message_id, receipt = sqs_messages.read_receipt_handle(handle, name)
    seconds = _int({"VisibilityTimeout": timeout}, "VisibilityTimeout", 0, 43200)
    if seconds is None:
        raise sqs_errors.missing_parameter("VisibilityTimeout")
    try:
        await env.ctx.store.extend(env.project, name, message_id, receipt, seconds * 1000)
    except (errors.LeaseExpired, errors.MessageNotFound):
        raise sqs_errors.message_not_inflight() from None


async def change_message_visibility(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    await _change_visibility(env, name, params.get("ReceiptHandle"), params.get("VisibilityTimeout"))
    return {}


async def change_message_visibility_batch(env: Env, params: dict[str, Any]) -> dict[str, Any]:
    name = queue_name_of(env, params)
    entries = _entries(params)
    await env.cache.get(env.project, name)
    successful, failed = [], []
    for entry in entries:
        try:
            await _change_visibility(env, name, entry.get("ReceiptHandle"), entry.get("VisibilityTimeout"))
            successful.append({"Id": entry["Id"]})
        except sqs_errors.SqsError as exc:
            failed.append(_failed(entry["Id"], exc))
    return {"Successful": successful, "Failed": failed}


Action = Callable[[Env, dict[str, Any]], Awaitable[dict[str, Any]]]

#: Every supported action (docs/sqs.md lists them); another action of SQS is UnsupportedOperation.
ACTIONS: dict[str, Action] = {
    "CreateQueue": create_queue, "GetQueueUrl": get_queue_url, "ListQueues": list_queues,
    "DeleteQueue": delete_queue, "PurgeQueue": purge_queue, "GetQueueAttributes": get_queue_attributes,
    "SetQueueAttributes": set_queue_attributes, "SendMessage": send_message, "SendMessageBatch": send_message_batch,
    "ReceiveMessage": receive_message, "DeleteMessage": delete_message, "DeleteMessageBatch": delete_message_batch,
    "ChangeMessageVisibility": change_message_visibility,
    "ChangeMessageVisibilityBatch": change_message_visibility_batch,
    "ListDeadLetterSourceQueues": list_dead_letter_source_queues, "StartMessageMoveTask": start_message_move_task,
    "ListMessageMoveTasks": list_message_move_tasks, "CancelMessageMoveTask": cancel_message_move_task,
    "TagQueue": tag_queue, "UntagQueue": untag_queue, "ListQueueTags": list_queue_tags,
}
#: SQS actions this service does not serve (answered UnsupportedOperation).
UNSUPPORTED = ("AddPermission", "RemovePermission")
