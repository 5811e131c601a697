"""Run by tests/sqs/test_sqs_query_protocol.py in a virtualenv of an early-2023 boto3/botocore, whose SQS model
speaks the query protocol (form-encoded requests, XML answers). Arguments: endpoint, access key id, secret, a
unique prefix. Prints "ok" when every step held; any failure is an exception (exit 1)."""

import sys

import boto3
import botocore
from botocore.exceptions import ClientError

endpoint, access_key_id, secret, prefix = sys.argv[1:5]
session = boto3.session.Session()
sqs = session.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key_id,
                     aws_secret_access_key=secret)
assert sqs.meta.service_model.protocol == "query", sqs.meta.service_model.protocol
print("botocore", botocore.__version__, file=sys.stderr)

url = sqs.create_queue(QueueName=f"{prefix}-std", Attributes={"VisibilityTimeout": "40"},
                       tags={"team": "q"})["QueueUrl"]
assert url.endswith(f"/{prefix}-std"), url
assert sqs.get_queue_url(QueueName=f"{prefix}-std")["QueueUrl"] == url
assert url in sqs.list_queues(QueueNamePrefix=prefix)["QueueUrls"]
assert sqs.list_queue_tags(QueueUrl=url)["Tags"] == {"team": "q"}
attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
assert attrs["VisibilityTimeout"] == "40", attrs
sqs.set_queue_attributes(QueueUrl=url, Attributes={"ReceiveMessageWaitTimeSeconds": "1"})

sent = sqs.send_message(QueueUrl=url, MessageBody="query <body> & more\r\n", MessageAttributes={
    "s": {"DataType": "String", "StringValue": "x<y"},
    "n": {"DataType": "Number.int", "StringValue": "5"},
    "b": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
})  # botocore verifies both MD5s
batch = sqs.send_message_batch(QueueUrl=url, Entries=[
    {"Id": "one", "MessageBody": "b1"}, {"Id": "two", "MessageBody": "b2", "DelaySeconds": 0},
    {"Id": "bad", "MessageBody": "b3", "DelaySeconds": 5000},
])
assert sorted(e["Id"] for e in batch["Successful"]) == ["one", "two"], batch
assert batch["Failed"][0]["Id"] == "bad" and batch["Failed"][0]["Code"] == "InvalidParameterValue", batch

seen = {}
while len(seen) < 3:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                              AttributeNames=["All"]).get("Messages", [])
    assert got, seen
    for m in got:
        seen[m["Body"]] = m
first = seen["query <body> & more\r\n"]  # a carriage return survives the XML
assert first["MessageId"] == sent["MessageId"]
assert first["MessageAttributes"]["b"]["BinaryValue"] == b"\x01\x02"
assert first["MessageAttributes"]["n"]["StringValue"] == "5"
assert first["Attributes"]["ApproximateReceiveCount"] == "1"
sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=seen["b1"]["ReceiptHandle"], VisibilityTimeout=100)
result = sqs.delete_message_batch(QueueUrl=url, Entries=[
    {"Id": f"e{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(seen.values())])
assert len(result["Successful"]) == 3, result
sqs.purge_queue(QueueUrl=url)

fifo = sqs.create_queue(QueueName=f"{prefix}-f.fifo", Attributes={"FifoQueue": "true",
                                                                    "ContentBasedDeduplication": "true"})["QueueUrl"]
a = sqs.send_message(QueueUrl=fifo, MessageBody="f1", MessageGroupId="g")
b = sqs.send_message(QueueUrl=fifo, MessageBody="f1", MessageGroupId="g")
assert a["MessageId"] == b["MessageId"] and a["SequenceNumber"]
m = sqs.receive_message(QueueUrl=fifo, AttributeNames=["MessageGroupId"])["Messages"][0]
assert m["Attributes"]["MessageGroupId"] == "g"
sqs.delete_message(QueueUrl=fifo, ReceiptHandle=m["ReceiptHandle"])

try:
    sqs.get_queue_url(QueueName=f"{prefix}-missing")
    raise AssertionError("a missing queue was found")
except ClientError as exc:
    assert exc.response["Error"]["Code"] == "AWS.SimpleQueueService.NonExistentQueue", exc.response
    assert exc.response["ResponseMetadata"]["HTTPStatusCode"] == 400
try:
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "x", "MessageBody": "1"}, {"Id": "x", "MessageBody": "2"}])
    raise AssertionError("repeated ids were accepted")
except ClientError as exc:
    assert exc.response["Error"]["Code"] == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", exc.response
wrong = session.client("sqs", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=access_key_id,
                       aws_secret_access_key=secret + "x")
try:
    wrong.list_queues()
    raise AssertionError("a wrong secret was accepted")
except ClientError as exc:
    assert exc.response["Error"]["Code"] == "SignatureDoesNotMatch", exc.response

sqs.delete_queue(QueueUrl=url)
sqs.delete_queue(QueueUrl=fifo)
print("ok")
