"""The SQS edge through the current boto3 (the JSON protocol): queues, messages, batches, visibility, errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_queue_lifecycle(sqs: Any, sqs_server: Any) -> None:
    name = f"life-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    assert url == f"{sqs_server.url}/{sqs_server.project}/{name}"
    assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
    with pytest.raises(ClientError) as exc:
        sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "46"})
    assert code_of(exc) == "QueueAlreadyExists"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "45"
    assert attrs["QueueArn"] == f"arn:aws:sqs:us-east-1:{sqs_server.project}:{name}"
    assert attrs["ApproximateNumberOfMessages"] == "0"
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "2", "MessageRetentionPeriod": "172800"})
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds", "MessageRetentionPeriod"])
    assert attrs["Attributes"] == {"DelaySeconds": "2", "MessageRetentionPeriod": "172800"}
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as exc:
        sqs.get_queue_url(QueueName=name)
    assert code_of(exc) == "AWS.SimpleQueueService.NonExistentQueue"
    assert exc.value.response["Error"].get("QueryErrorCode") == "QueueDoesNotExist"


def test_list_queues_prefix_and_pages(sqs: Any, make_queue: Callable[..., str]) -> None:
    prefix = f"lst{uuid.uuid4().hex[:6]}"
    urls = sorted(make_queue(prefix) for _ in range(3))
    assert sorted(sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]) == urls
    first = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2)
    assert len(first["QueueUrls"]) == 2 and first["NextToken"]
    second = sqs.list_queues(QueueNamePrefix=prefix, MaxResults=2, NextToken=first["NextToken"])
    assert first["QueueUrls"] + second["QueueUrls"] == urls and "NextToken" not in second
    pages = sqs.get_paginator("list_queues").paginate(QueueNamePrefix=prefix, PaginationConfig={"PageSize": 1})
    assert [u for page in pages for u in page.get("QueueUrls", [])] == urls


def test_send_receive_delete_with_attributes(sqs: Any, sqs_server: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    sent = sqs.send_message(QueueUrl=url, MessageBody="héllo {not json", MessageAttributes={
        "kind": {"DataType": "String", "StringValue": "greeting"},
        "n": {"DataType": "Number", "StringValue": "42"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
    })  # boto3 checks MD5OfMessageBody and MD5OfMessageAttributes itself
    got = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], AttributeNames=["All"],
                              MaxNumberOfMessages=10)["Messages"]
    assert len(got) == 1
    message = got[0]
    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == "héllo {not json"
    assert message["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\xff"
    assert message["MessageAttributes"]["n"] == {"DataType": "Number", "StringValue": "42"}
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert abs(int(message["Attributes"]["SentTimestamp"]) - time.time() * 1000) < 60_000
    assert message["Attributes"]["SenderId"] == sqs_server.project
    only = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)  # still in flight: nothing
    assert "Messages" not in only
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])  # stale: succeeds, as SQS
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                   "ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
    with pytest.raises(ClientError) as exc:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert code_of(exc) == "ReceiptHandleIsInvalid"


def test_selected_message_attributes(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageAttributes={
        "a.one": {"DataType": "String", "StringValue": "1"}, "b": {"DataType": "String", "StringValue": "2"}})
    message = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["a.*"])["Messages"][0]
    assert set(message["MessageAttributes"]) == {"a.one"}  # boto3 checked the MD5 of the returned ones
    assert "Attributes" not in message


def test_batches(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    result = sqs.send_message_batch(QueueUrl=url, Entries=[
        *({"Id": f"m{i}", "MessageBody": f"body {i}"} for i in range(9)),
        {"Id": "bad", "MessageBody": "x", "DelaySeconds": 901},
    ])
    assert sorted(e["Id"] for e in result["Successful"]) == [f"m{i}" for i in range(9)]
    assert [(f["Id"], f["Code"], f["SenderFault"]) for f in result["Failed"]] == [
        ("bad", "InvalidParameterValue", True)]
    received: list[dict[str, Any]] = []
    while len(received) < 9:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert got, "messages missing"
        received += got
    assert sorted(m["Body"] for m in received) == sorted(f"body {i}" for i in range(9))
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[
        *({"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)),
        {"Id": "broken", "ReceiptHandle": "zzz"},
    ])
    assert len(deleted["Successful"]) == 9
    assert [f["Code"] for f in deleted["Failed"]] == ["ReceiptHandleIsInvalid"]
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "x"}] * 2)
    assert code_of(exc) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(ClientError) as exc:
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": f"i{i}", "MessageBody": "x"} for i in range(11)])
    assert code_of(exc) == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"


def test_change_visibility(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    sqs.send_message(QueueUrl=url, MessageBody="v")
    first = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"][0]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
    assert again["MessageId"] == first["MessageId"]
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    with pytest.raises(ClientError) as exc:  # the first handle is stale now
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"], VisibilityTimeout=10)
    assert code_of(exc) == "AWS.SimpleQueueService.MessageNotInflight"
    result = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "ok", "ReceiptHandle": again["ReceiptHandle"], "VisibilityTimeout": 60},
        {"Id": "stale", "ReceiptHandle": first["ReceiptHandle"], "VisibilityTimeout": 60},
    ])
    assert [e["Id"] for e in result["Successful"]] == ["ok"]
    assert [f["Id"] for f in result["Failed"]] == ["stale"]


def test_long_poll_wakes_on_send(sqs: Any, sqs_server: Any, make_queue: Callable[..., str]) -> None:
    import threading

    from sqskit import boto3_client

    url = make_queue()
    sender = boto3_client(sqs_server)
    timer = threading.Timer(0.5, lambda: sender.send_message(QueueUrl=url, MessageBody="late"))
    started = time.monotonic()
    timer.start()
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    elapsed = time.monotonic() - started
    timer.join()
    assert [m["Body"] for m in got["Messages"]] == ["late"]
    assert 0.4 < elapsed < 4


def test_tags(sqs: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    sqs.tag_queue(QueueUrl=url, Tags={"team": "a", "env": "test"})
    sqs.untag_queue(QueueUrl=url, TagKeys=["env"])
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "a"}


def test_errors(sqs: Any, sqs_server: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x", DelaySeconds=1000)
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Bogus": "1"})
    assert code_of(exc) == "InvalidAttributeName"
    with pytest.raises(ClientError) as exc:
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=11)
    assert code_of(exc) == "InvalidParameterValue"
    with pytest.raises(ClientError) as exc:
        sqs.add_permission(QueueUrl=url, Label="l", AWSAccountIds=["1"], Actions=["SendMessage"])
    assert code_of(exc) == "AWS.SimpleQueueService.UnsupportedOperation"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="bad \x01 char")
    assert code_of(exc) == "InvalidMessageContents"
    with pytest.raises(ClientError) as exc:
        sqs.send_message(QueueUrl=url, MessageBody="x" * 262_145)
    assert code_of(exc) == "InvalidParameterValue"
