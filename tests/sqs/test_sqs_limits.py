"""SQS's limits and the attributes infrastructure tools send, through the current boto3: each limit answered with
the code AWS gives, RedriveAllowPolicy applied when a queue names a dead-letter queue."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def arn_of(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def test_message_and_batch_limits(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=url, Entries=[])
    assert code_of(exc) == "AWS.SimpleQueueService.EmptyBatchRequest"
    # ten entries of 30,000 bytes: each within the message limit, together over the batch's 262,144
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"e{i}", "MessageBody": "b" * 30_000}
                                                      for i in range(10)])
    assert code_of(exc) == "AWS.SimpleQueueService.BatchRequestTooLong"
    attributes = {f"a{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)}
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes=attributes)
    assert code_of(exc) == "InvalidParameterValue"
    # a queue's MaximumMessageSize counts the body and the attributes
    small = make_queue("small", MaximumMessageSize="1024")
    sqs.send_message(QueueUrl=small, MessageBody="s" * 1000)
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=small, MessageBody="s" * 1000,
                         MessageAttributes={"name": {"DataType": "String", "StringValue": "v" * 30}})
    assert code_of(exc) == "InvalidParameterValue"
    result = sqs.send_message_batch(QueueUrl=small, Entries=[{"Id": "ok", "MessageBody": "o"},
                                                             {"Id": "big", "MessageBody": "s" * 1025}])
    assert [e["Id"] for e in result["Successful"]] == ["ok"]
    assert [(f["Id"], f["Code"]) for f in result["Failed"]] == [("big", "InvalidParameterValue")]
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=small, Attributes={"MaximumMessageSize": "1023"})
    assert code_of(exc) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName="n" * 81)
    assert code_of(exc) == "InvalidParameterValue"


def test_batch_bodies_beyond_printable_ascii(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    bodies = ["plain", "tab\tand\nnewline", "ünïcödé 日本 \U0001f600", "del \x7f", '"quoted" \\']
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"b{i}", "MessageBody": b}
                                                         for i, b in enumerate(bodies)])["Successful"]
    assert {e["Id"]: e["MD5OfMessageBody"] for e in sent} == {
        f"b{i}": hashlib.md5(b.encode()).hexdigest() for i, b in enumerate(bodies)}
    got: list[str] = []
    while len(got) < len(bodies):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)["Messages"]
        got += [m["Body"] for m in messages]
    assert sorted(got) == sorted(bodies)


def test_receive_request_attempt_id_is_checked(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue("attempt", fifo=True, ContentBasedDeduplication="true")
    sqs.send_message(QueueUrl=url, MessageBody="one", MessageGroupId="g")
    got = sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="attempt-1",
                              MessageSystemAttributeNames=["MessageGroupId", "SequenceNumber"])["Messages"]
    assert got[0]["Body"] == "one" and got[0]["Attributes"]["MessageGroupId"] == "g"
    assert len(got[0]["Attributes"]["SequenceNumber"]) == 20
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=url, ReceiveRequestAttemptId="x" * 129)
    assert code_of(exc) == "InvalidParameterValue"


def test_attributes_with_one_value_here(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue(SqsManagedSseEnabled="false")
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]["SqsManagedSseEnabled"] \
        == "false"
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"SqsManagedSseEnabled": "true"})
    assert code_of(exc) == "InvalidAttributeValue"
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"FifoThroughputLimit": "perQueue"})
    assert code_of(exc) == "InvalidAttributeName"  # a FIFO queue's attribute
    fifo = make_queue("f", fifo=True, DeduplicationScope="queue", FifoThroughputLimit="perQueue")
    found = sqs.get_queue_attributes(QueueUrl=fifo, AttributeNames=["All"])["Attributes"]
    assert (found["DeduplicationScope"], found["FifoThroughputLimit"]) == ("queue", "perQueue")
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=fifo, Attributes={"DeduplicationScope": "messageGroup"})
    assert code_of(exc) == "InvalidAttributeValue"


def test_redrive_allow_policy_is_enforced(sqs: Any, make_queue: Callable[..., str]) -> None:
    allowed, other = make_queue("allowed"), make_queue("other")
    dlq = make_queue("dlq", RedriveAllowPolicy=json.dumps({"redrivePermission": "byQueue",
                                                           "sourceQueueArns": [arn_of(sqs, allowed)]}))
    policy = json.dumps({"deadLetterTargetArn": arn_of(sqs, dlq), "maxReceiveCount": 3})
    sqs.set_queue_attributes(QueueUrl=allowed, Attributes={"RedrivePolicy": policy})
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": policy})
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName="refused-source", Attributes={"RedrivePolicy": policy})
    assert code_of(exc) == "InvalidParameterValue"
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "denyAll"})})
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": policy})
    assert code_of(exc) == "InvalidParameterValue"
    sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(
        {"redrivePermission": "allowAll"})})
    sqs.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": policy})
    assert sorted(sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"]) == sorted([allowed, other])
    for bad in ({"redrivePermission": "byQueue"}, {"redrivePermission": "sometimes"}):
        with pytest.raises(ClientError) as exc:
            sqs.set_queue_attributes(QueueUrl=dlq, Attributes={"RedriveAllowPolicy": json.dumps(bad)})
        assert code_of(exc) == "InvalidAttributeValue"
    missing = policy.replace(arn_of(sqs, dlq).rsplit(":", 1)[1], "no-such-queue")
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=other, Attributes={"RedrivePolicy": missing})
    assert code_of(exc) == "InvalidParameterValue"
    for url in (allowed, other):  # so the fixture can delete the dead-letter queue
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"RedrivePolicy": ""})
