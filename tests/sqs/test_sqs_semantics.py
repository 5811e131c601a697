"""SQS semantics on the native queues: FIFO groups and deduplication, RedrivePolicy onto retries and the
dead-letter queue, message moves, and native <-> SQS interop on the same queues."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from broker.client import BrokerError, Client


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture
def native(sqs_server: Any) -> Iterator[Client]:
    with Client(sqs_server.url, sqs_server.key) as client:
        yield client


def name_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_fifo_groups_order_and_deduplication(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue(fifo=True)
    assert url.endswith(".fifo")
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["FifoQueue", "ContentBasedDeduplication"])
    assert attrs["Attributes"] == {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageDeduplicationId="d")
    assert code_of(exc) == "MissingParameter"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g")
    assert code_of(exc) == "InvalidParameterValue"  # no dedup id, no content-based deduplication
    first = sqs.send_message(QueueUrl=url, MessageBody="a1", MessageGroupId="a", MessageDeduplicationId="1")
    again = sqs.send_message(QueueUrl=url, MessageBody="other", MessageGroupId="a", MessageDeduplicationId="1")
    assert again["MessageId"] == first["MessageId"]  # deduplicated within 5 minutes
    assert first["SequenceNumber"].isdigit() and len(first["SequenceNumber"]) == 20
    sqs.send_message(QueueUrl=url, MessageBody="a2", MessageGroupId="a", MessageDeduplicationId="2")
    sqs.send_message(QueueUrl=url, MessageBody="b1", MessageGroupId="b", MessageDeduplicationId="3")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in got] == ["a1", "a2", "b1"]
    assert got[0]["Attributes"]["MessageGroupId"] == "a"
    assert got[0]["Attributes"]["MessageDeduplicationId"] == "1"
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # groups busy while in flight
    sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                                    for i, m in enumerate(got)])
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="a", MessageDeduplicationId="9",
                         DelaySeconds=1)
    assert code_of(exc) == "InvalidParameterValue"


def test_content_based_deduplication(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue(fifo=True, ContentBasedDeduplication="true")
    one = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    two = sqs.send_message(QueueUrl=url, MessageBody="same", MessageGroupId="g")
    three = sqs.send_message(QueueUrl=url, MessageBody="different", MessageGroupId="g")
    assert one["MessageId"] == two["MessageId"] != three["MessageId"]
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "a", "MessageBody": "batch", "MessageGroupId": "g"},
        {"Id": "b", "MessageBody": "batch", "MessageGroupId": "g"},
    ])
    ids = {e["Id"]: e["MessageId"] for e in batch["Successful"]}
    assert ids["a"] == ids["b"]
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in got] == ["same", "different", "batch"]


def test_fifo_names_need_the_suffix(sqs: Any, native: Client) -> None:
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=f"nofifo-{uuid.uuid4().hex[:6]}", Attributes={"FifoQueue": "true"})
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError):
        sqs.create_queue(QueueName=f"std-{uuid.uuid4().hex[:6]}.fifo")
    name = f"nat-{uuid.uuid4().hex[:6]}.fifo"
    with pytest.raises(BrokerError) as refused:
        native.create_queue(name)  # a standard queue's name cannot end in .fifo
    assert refused.value.status == 400
    native.create_queue(name, type="fifo")  # the native API accepts the suffix on FIFO queues
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["FifoQueue"])["Attributes"]["FifoQueue"] == "true"
    finally:
        native.delete_queue(name)


def test_redrive_policy_moves_after_max_receive_count(sqs: Any, make_queue: Callable[..., str],
                                                      native: Client) -> None:
    dlq = make_queue("dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
    url = make_queue("src", RedrivePolicy=policy)
    record = native.get_queue(name_of(url))
    assert record.dead_letter_queue == name_of(dlq) and record.max_retries == 1
    back = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"]
    assert '"maxReceiveCount":2' in back and dlq_arn in back
    assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [url]
    sqs.send_message(QueueUrl=url, MessageBody="poison", MessageAttributes={
        "k": {"DataType": "String", "StringValue": "v"}})
    for receive in (1, 2):
        got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1, WaitTimeSeconds=3,
                                  AttributeNames=["ApproximateReceiveCount"])["Messages"]
        assert got[0]["Attributes"]["ApproximateReceiveCount"] == str(receive)
    time.sleep(1.2)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)  # dead-lettered when the second lease ended
    dead = sqs.receive_message(QueueUrl=dlq, MessageAttributeNames=["All"])["Messages"]
    assert dead[0]["Body"] == "poison" and dead[0]["MessageAttributes"]["k"]["StringValue"] == "v"
    sqs.change_message_visibility(QueueUrl=dlq, ReceiptHandle=dead[0]["ReceiptHandle"], VisibilityTimeout=0)


def test_message_move_task_redrives_to_the_source(sqs: Any, make_queue: Callable[..., str]) -> None:
    dlq = make_queue("dlq")
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = make_queue("src", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 1}))
    sqs.send_message(QueueUrl=url, MessageBody="retry me")
    sqs.receive_message(QueueUrl=url, VisibilityTimeout=1)
    time.sleep(1.2)
    assert "Messages" not in sqs.receive_message(QueueUrl=url)
    handle = sqs.start_message_move_task(SourceArn=dlq_arn)["TaskHandle"]
    tasks = sqs.list_message_move_tasks(SourceArn=dlq_arn)["Results"]
    assert tasks[0]["Status"] == "COMPLETED" and tasks[0]["ApproximateNumberOfMessagesMoved"] == 1
    got = sqs.receive_message(QueueUrl=url)["Messages"]
    assert got[0]["Body"] == "retry me"
    with pytest.raises(ClientError) as exc:
        sqs.cancel_message_move_task(TaskHandle=handle)
    assert code_of(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        sqs.start_message_move_task(SourceArn=dlq_arn.replace(name_of(dlq), name_of(url)))
    assert code_of(exc) == "InvalidParameterValue"  # not a dead-letter queue


def test_sqs_to_native_and_back(sqs: Any, sqs_server: Any, make_queue: Callable[..., str], native: Client) -> None:
    url = make_queue()
    queue = name_of(url)
    sqs.send_message(QueueUrl=url, MessageBody='{"looks": "like json"}', MessageAttributes={
        "a": {"DataType": "String", "StringValue": "b"}})
    [message] = native.consume(queue, max_messages=10).messages
    assert message.payload == '{"looks": "like json"}'  # the body as a JSON string (docs/sqs.md)
    native.ack(queue, message_id=message.message_id, receipt=message.receipt)
    native.publish(queue, payload={"order": 7})
    native.publish(queue, payload="plain text")
    escaped = 'a "quote", a \\ backslash,\na newline, ünïcödé 日本'
    native.publish(queue, payload=escaped)
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["SenderId"])["Messages"]
    assert [m["Body"] for m in got] == ['{"order":7}', "plain text", escaped]
    assert [m["MD5OfBody"] for m in got] == [hashlib.md5(m["Body"].encode()).hexdigest() for m in got]
    assert got[0]["Attributes"]["SenderId"] == sqs_server.project
    for m in got:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert native.stats(queue).available == 0 and native.stats(queue).in_flight == 0


def test_native_queue_attributes_map_both_ways(sqs: Any, native: Client) -> None:
    name = f"map-{uuid.uuid4().hex[:6]}"
    native.create_queue(name, visibility_timeout_default=77, message_retention_days=2)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attrs["VisibilityTimeout"] == "77" and attrs["MessageRetentionPeriod"] == str(2 * 86400)
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "12",
                                                           "MessageRetentionPeriod": "90000"})
        record = native.get_queue(name)
        assert record.visibility_timeout_default == 12 and record.message_retention_days == 2  # rounded up
    finally:
        native.delete_queue(name)
