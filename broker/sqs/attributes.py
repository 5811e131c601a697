"""SQS queue attributes on the native queue configuration (docs/sqs.md, "Queue attributes").

VisibilityTimeout is the queue's ``visibility_timeout_default``; MessageRetentionPeriod its
``message_retention_days`` (in whole days: a period is rounded up to a day); RedrivePolicy its
``dead_letter_queue`` and ``max_retries`` (``maxReceiveCount`` = 1 + ``max_retries``; without a policy
``max_retries`` is 1000, the native maximum); FifoQueue its type. The others SQS has and the native queue has not
(DelaySeconds, ReceiveMessageWaitTimeSeconds, MaximumMessageSize, ContentBasedDeduplication, RedriveAllowPolicy)
are kept in the queue's ``sqs`` hash.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from broker.schemas import QueueStats
from broker.sqs import errors as sqs_errors
from broker.store.sqs import QueueInfo

NO_REDRIVE_MAX_RETRIES = 1000
MAX_RECEIVE_COUNT = NO_REDRIVE_MAX_RETRIES + 1
DAY = 86400

#: Settable attribute -> (lowest, highest) for numbers, None for the others.
SETTABLE: dict[str, tuple[int, int] | None] = {
    "VisibilityTimeout": (0, 43200),
    "MessageRetentionPeriod": (60, 1_209_600),
    "DelaySeconds": (0, 900),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "MaximumMessageSize": (1024, 262_144),
    "RedrivePolicy": None,
    "RedriveAllowPolicy": None,
    "FifoQueue": None,
    "ContentBasedDeduplication": None,
    "SqsManagedSseEnabled": None,
    "DeduplicationScope": None,
    "FifoThroughputLimit": None,
}
#: Attributes SQS lets one set that have one value here: that value is accepted (and changes nothing), another
#: is InvalidAttributeValue. Infrastructure tools send them: SSE off, FIFO deduplication and throughput per queue.
FIXED = {"SqsManagedSseEnabled": ("false", "server-side encryption is not supported"),
         "DeduplicationScope": ("queue", "deduplication is per queue"),
         "FifoThroughputLimit": ("perQueue", "the throughput limit is per queue")}
#: How many source queues a byQueue RedriveAllowPolicy may name (SQS's limit).
MAX_REDRIVE_SOURCES = 10
#: Kept in the queue's sqs hash (the others are native settings).
SQS_ONLY = ("DelaySeconds", "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize", "ContentBasedDeduplication",
            "RedriveAllowPolicy")
READ_ONLY = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp", "QueueArn")
ALL = (*SETTABLE, *READ_ONLY)
_COUNTS = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
           "ApproximateNumberOfMessagesDelayed")


def queue_arn(region: str, project: str, queue: str) -> str:
    return f"arn:aws:sqs:{region}:{project}:{queue}"


def arn_queue(arn: Any, region: str, project: str, parameter: str = "RedrivePolicy") -> str:
    """The queue an ARN of this project names (the region is not checked: clients may run in any)."""
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "sqs"] or not parts[5]:
        raise sqs_errors.invalid_parameter(f"Value {arn} for parameter {parameter} is invalid. Reason: Invalid "
                                           "queue ARN.")
    if parts[4] != project:
        raise sqs_errors.invalid_parameter(f"Value for parameter {parameter} is invalid. Reason: the ARN names "
                                           "another account.")
    return parts[5]


def _number(name: str, value: Any) -> int:
    limits = SETTABLE[name]
    assert limits is not None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise sqs_errors.invalid_attribute_value(name, "Reason: must be an integer.") from None
    if not limits[0] <= number <= limits[1]:
        raise sqs_errors.invalid_attribute_value(name, f"Reason: must be between {limits[0]} and {limits[1]}.")
    return number


def _boolean(name: str, value: Any) -> bool:
    text = str(value).strip().lower()
    if text not in ("true", "false"):
        raise sqs_errors.invalid_attribute_value(name, "Reason: must be true or false.")
    return text == "true"


@dataclass
class Changes:
    """What a CreateQueue or SetQueueAttributes asks for, validated: native settings and SQS-only values."""

    native: dict[str, Any]
    sqs: dict[str, str]
    remove: list[str]
    fifo: bool | None = None
    fixed: list[str] = field(default_factory=list)  # FIXED attributes given (with their one value)


def read_changes(given: Any, region: str, project: str) -> Changes:
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise sqs_errors.invalid_parameter("Attributes must be a map of attribute names to values.")
    changes = Changes({}, {}, [])
    for name, value in given.items():
        if name not in SETTABLE:
            raise sqs_errors.invalid_attribute_name(name)
        if name == "VisibilityTimeout":
            changes.native["visibility_timeout_default"] = _number(name, value)
        elif name == "MessageRetentionPeriod":
            changes.native["message_retention_days"] = max(1, math.ceil(_number(name, value) / DAY))
        elif name in ("DelaySeconds", "ReceiveMessageWaitTimeSeconds", "MaximumMessageSize"):
            changes.sqs[name] = str(_number(name, value))
        elif name in FIXED:
            accepted, why = FIXED[name]
            if str(value) != accepted:
                raise sqs_errors.invalid_attribute_value(name, f"Reason: only {accepted} ({why}).")
            changes.fixed.append(name)
        elif name == "FifoQueue":
            changes.fifo = _boolean(name, value)
        elif name == "ContentBasedDeduplication":
            changes.sqs[name] = "true" if _boolean(name, value) else "false"
        elif name == "RedrivePolicy":
            if value in ("", None, "{}"):
                changes.native["dead_letter_queue"] = None
                changes.native["max_retries"] = NO_REDRIVE_MAX_RETRIES
                continue
            try:
                policy = json.loads(value) if isinstance(value, str) else value
                target, count = policy["deadLetterTargetArn"], int(policy["maxReceiveCount"])
            except (ValueError, TypeError, KeyError):
                raise sqs_errors.invalid_attribute_value(
                    name, "Reason: Redrive policy must be JSON with deadLetterTargetArn and maxReceiveCount."
                ) from None
            if not 1 <= count <= MAX_RECEIVE_COUNT:
                raise sqs_errors.invalid_attribute_value(
                    name, f"Reason: maxReceiveCount must be between 1 and {MAX_RECEIVE_COUNT}.")
            changes.native["dead_letter_queue"] = arn_queue(target, region, project)
            changes.native["max_retries"] = count - 1
        elif name == "RedriveAllowPolicy":
            if value in ("", None):
                changes.remove.append(name)
                continue
            redrive_sources(value, region, project)  # checked now, applied when a queue names this one
            changes.sqs[name] = value if isinstance(value, str) else json.dumps(value)
    return changes


def redrive_sources(value: Any, region: str, project: str) -> frozenset[str] | None:
    """The source queues a RedriveAllowPolicy lets use the queue as dead-letter queue: the names of a ``byQueue``
    policy's ``sourceQueueArns`` (1 to 10), none for ``denyAll``, None for ``allowAll`` (any queue)."""
    try:
        policy = json.loads(value) if isinstance(value, str) else value
        permission = policy.get("redrivePermission")
        arns = policy.get("sourceQueueArns")
    except (ValueError, TypeError, AttributeError):
        permission, arns = None, None
    if permission == "allowAll":
        return None
    if permission == "denyAll":
        return frozenset()
    if permission == "byQueue" and isinstance(arns, list) and 1 <= len(arns) <= MAX_REDRIVE_SOURCES:
        return frozenset(arn_queue(arn, region, project, "RedriveAllowPolicy") for arn in arns)
    raise sqs_errors.invalid_attribute_value(
        "RedriveAllowPolicy", "Reason: redrivePermission must be allowAll, denyAll or byQueue (with 1 to "
        f"{MAX_REDRIVE_SOURCES} sourceQueueArns).")


def check_redrive_allowed(dead_letter_queue: QueueInfo, source: str, region: str, project: str) -> None:
    """Refuse a RedrivePolicy of ``source`` naming a dead-letter queue whose RedriveAllowPolicy does not allow it."""
    policy = dead_letter_queue.sqs.get("RedriveAllowPolicy")
    if policy is None:
        return
    allowed = redrive_sources(policy, region, project)
    if allowed is not None and source not in allowed:
        raise sqs_errors.invalid_parameter(
            f"Value for parameter RedrivePolicy is invalid. Reason: Queue {queue_arn(region, project, source)} is "
            f"not allowed to use {queue_arn(region, project, dead_letter_queue.name)} as its dead-letter queue "
            "(its RedriveAllowPolicy).")


def wanted(names: Any) -> set[str]:
    """The attribute names a GetQueueAttributes (or ReceiveMessage) asks for; ``All`` is every one."""
    if names is None:
        return set()
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise sqs_errors.invalid_parameter("AttributeNames must be a list of names.")
    if "All" in names:
        return set(ALL)
    for name in names:
        if name not in ALL:
            raise sqs_errors.invalid_attribute_name(name)
    return set(names)


def needs_counts(names: set[str]) -> bool:
    return any(n in names for n in _COUNTS)


def values(info: QueueInfo, stats: QueueStats | None, names: set[str], region: str, project: str) -> dict[str, str]:
    """The values of ``names`` for a queue, as SQS writes them (strings)."""
    sqs = info.sqs
    created = str(info.created_ms // 1000)
    found: dict[str, str] = {
        "VisibilityTimeout": str(info.visibility_seconds),
        "MessageRetentionPeriod": str(info.retention_days * DAY),
        "DelaySeconds": sqs.get("DelaySeconds", "0"),
        "ReceiveMessageWaitTimeSeconds": sqs.get("ReceiveMessageWaitTimeSeconds", "0"),
        "MaximumMessageSize": sqs.get("MaximumMessageSize", "262144"),
        "QueueArn": queue_arn(region, project, info.name),
        "CreatedTimestamp": created,
        "LastModifiedTimestamp": sqs.get("LastModifiedTimestamp", created),
        "SqsManagedSseEnabled": "false",
    }
    if info.dead_letter_queue:
        found["RedrivePolicy"] = json.dumps({
            "deadLetterTargetArn": queue_arn(region, project, info.dead_letter_queue),
            "maxReceiveCount": info.max_retries + 1,
        }, separators=(",", ":"))
    if "RedriveAllowPolicy" in sqs:
        found["RedriveAllowPolicy"] = sqs["RedriveAllowPolicy"]
    if info.fifo:
        found["FifoQueue"] = "true"
        found["ContentBasedDeduplication"] = sqs.get("ContentBasedDeduplication", "false")
        found["DeduplicationScope"] = FIXED["DeduplicationScope"][0]
        found["FifoThroughputLimit"] = FIXED["FifoThroughputLimit"][0]
    if stats is not None:
        found["ApproximateNumberOfMessages"] = str(stats.available)
        found["ApproximateNumberOfMessagesNotVisible"] = str(stats.in_flight)
        found["ApproximateNumberOfMessagesDelayed"] = str(stats.delayed)
    return {k: v for k, v in found.items() if k in names}
