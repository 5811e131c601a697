"""SigV4 on the SQS edge: keys made by `broker keys create --json`, wrong secrets, other projects' queues,
presigned URLs, the 15-minute clock skew, revoked keys."""

from __future__ import annotations

import datetime
import json
import subprocess
import uuid
from collections.abc import Callable
from typing import Any
from unittest import mock

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from sqskit import PEPPER, REGION, boto3_client
from support import broker_command, clean_env

from broker.store.sqskeys import derive


def code_of(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def keys_create(sqs_server: Any, project: str) -> dict[str, str]:
    done = subprocess.run(
        broker_command("keys", "create", "--project", project, "--json"),
        env=clean_env(BROKER_REDIS_URL=sqs_server.redis_url, BROKER_SQS_PEPPER=PEPPER), capture_output=True,
        timeout=60, check=True,
    )
    created: dict[str, str] = json.loads(done.stdout)
    return created


def test_keys_create_json_gives_working_credentials(sqs_server: Any) -> None:
    created = keys_create(sqs_server, sqs_server.project)
    assert set(created) == {"project", "key", "key_id", "sqs_access_key_id", "sqs_secret_access_key"}
    assert created["project"] == sqs_server.project and created["key"].startswith(created["key_id"])
    assert (created["sqs_access_key_id"], created["sqs_secret_access_key"]) == derive(created["key"])
    import boto3

    client = boto3.client("sqs", endpoint_url=sqs_server.url, region_name="eu-west-3",
                          aws_access_key_id=created["sqs_access_key_id"],
                          aws_secret_access_key=created["sqs_secret_access_key"])
    assert "QueueUrls" in client.list_queues() or True  # signed for another region: accepted
    # The store keeps no secret in clear: the record holds only the sealed form.
    import redis

    with redis.Redis.from_url(sqs_server.redis_url) as r:
        record = r.hget("v1:auth:sqs", created["sqs_access_key_id"])
    assert record is not None
    assert created["sqs_secret_access_key"].encode() not in record and created["key"].encode() not in record
    # Revoking the API key revokes its SQS credentials.
    subprocess.run(broker_command("keys", "revoke", created["key"]), timeout=60, check=True, capture_output=True,
                   env=clean_env(BROKER_REDIS_URL=sqs_server.redis_url))
    import time

    time.sleep(0.7)  # the credential cache
    with pytest.raises(ClientError) as exc:
        client.list_queues()
    assert code_of(exc) == "InvalidClientTokenId"


def test_a_wrong_secret_is_refused(sqs_server: Any) -> None:
    import boto3

    access_key_id, secret = derive(sqs_server.key)
    client = boto3.client("sqs", endpoint_url=sqs_server.url, region_name=REGION, aws_access_key_id=access_key_id,
                          aws_secret_access_key=secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    with pytest.raises(ClientError) as exc:
        client.list_queues()
    assert code_of(exc) == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    unknown = boto3.client("sqs", endpoint_url=sqs_server.url, region_name=REGION,
                           aws_access_key_id="AKBRAAAAAAAAAAAAAAAA", aws_secret_access_key=secret)
    with pytest.raises(ClientError) as exc:
        unknown.list_queues()
    assert code_of(exc) == "InvalidClientTokenId"


def test_unsigned_and_tampered_requests_are_refused(sqs_server: Any) -> None:
    body = json.dumps({"QueueNamePrefix": ""})
    headers = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    answer = httpx.post(sqs_server.url + "/", content=body, headers=headers)
    assert answer.status_code == 403
    assert answer.headers["x-amzn-query-error"] == "MissingAuthenticationToken;Sender"
    access_key_id, secret = derive(sqs_server.key)
    request = AWSRequest("POST", sqs_server.url + "/", data=body, headers=headers)
    SigV4Auth(Credentials(access_key_id, secret), "sqs", REGION).add_auth(request)
    signed = dict(request.headers.items())
    assert httpx.post(sqs_server.url + "/", content=body, headers=signed).status_code == 200
    tampered = httpx.post(sqs_server.url + "/", content=body.replace('""', '"x"'), headers=signed)
    assert tampered.status_code == 403 and "SignatureDoesNotMatch" in tampered.headers["x-amzn-query-error"]


@pytest.mark.parametrize(("minutes", "accepted"), [(-14, True), (14, True), (-16, False), (16, False)])
def test_fifteen_minutes_of_clock_skew(sqs_server: Any, minutes: int, accepted: bool) -> None:
    access_key_id, secret = derive(sqs_server.key)
    body = "{}"
    headers = {"X-Amz-Target": "AmazonSQS.ListQueues", "Content-Type": "application/x-amz-json-1.0"}
    request = AWSRequest("POST", sqs_server.url + "/", data=body, headers=headers)
    shifted = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    with mock.patch("botocore.auth.get_current_datetime", return_value=shifted.replace(tzinfo=None)):
        SigV4Auth(Credentials(access_key_id, secret), "sqs", REGION).add_auth(request)
    answer = httpx.post(sqs_server.url + "/", content=body, headers=dict(request.headers.items()))
    assert (answer.status_code == 200) is accepted, answer.text
    if not accepted:
        assert "Signature expired" in answer.json()["message"]


def test_presigned_url(sqs_server: Any, make_queue: Callable[..., str]) -> None:
    from urllib.parse import urlencode

    from botocore.auth import SigV4QueryAuth

    url = make_queue()
    client = boto3_client(sqs_server)
    client.send_message(QueueUrl=url, MessageBody="presigned")
    query = urlencode({"Action": "GetQueueAttributes", "AttributeName.1": "ApproximateNumberOfMessages"})
    request = AWSRequest("GET", f"{url}?{query}")
    SigV4QueryAuth(Credentials(*derive(sqs_server.key)), "sqs", REGION, expires=60).add_auth(request)
    answer = httpx.get(request.url)
    assert answer.status_code == 200, answer.text
    assert "<Name>ApproximateNumberOfMessages</Name><Value>1</Value>" in answer.text
    broken = request.url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    refused = httpx.get(broken)
    assert refused.status_code == 403 and "<Code>SignatureDoesNotMatch</Code>" in refused.text
    expired = AWSRequest("GET", f"{url}?{query}")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    with mock.patch("botocore.auth.get_current_datetime", return_value=past.replace(tzinfo=None)):
        SigV4QueryAuth(Credentials(*derive(sqs_server.key)), "sqs", REGION, expires=60).add_auth(expired)
    answer = httpx.get(expired.url)
    assert answer.status_code == 403 and "<Code>RequestExpired</Code>" in answer.text


def test_a_project_never_reaches_another_projects_queues(sqs_server: Any, make_queue: Callable[..., str]) -> None:
    url = make_queue()
    theirs = boto3_client(sqs_server, sqs_server.other_key)
    with pytest.raises(ClientError) as exc:
        theirs.send_message(QueueUrl=url, MessageBody="intruder")
    assert code_of(exc) == "AWS.SimpleQueueService.NonExistentQueue"
    same_name = url.rsplit("/", 1)[1]
    assert same_name not in json.dumps(theirs.list_queues())
    with pytest.raises(ClientError):
        theirs.get_queue_url(QueueName=same_name)
    with pytest.raises(ClientError) as exc:
        theirs.get_queue_url(QueueName=same_name, QueueOwnerAWSAccountId=sqs_server.project)
    assert code_of(exc) == "AWS.SimpleQueueService.NonExistentQueue"
    name = f"x-{uuid.uuid4().hex[:6]}"
    own = theirs.create_queue(QueueName=name)["QueueUrl"]
    assert f"/{sqs_server.other_project}/{name}" in own
    theirs.delete_queue(QueueUrl=own)
