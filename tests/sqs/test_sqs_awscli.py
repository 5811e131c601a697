"""The AWS CLI (``awscli`` from PyPI, in its own virtualenv: tests/sqs/oldclients.py) against the SQS edge."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from oldclients import venv


@pytest.fixture(scope="module")
def aws(sqs_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    command = venv("awscli") / "aws"
    home = tmp_path_factory.mktemp("aws-home")
    access_key_id, secret = sqs_server.credentials()
    env = {"HOME": str(home), "PATH": str(command.parent) + ":/usr/bin:/bin", "AWS_ACCESS_KEY_ID": access_key_id,
           "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": "",
           "AWS_CONFIG_FILE": str(home / "config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials")}

    def run(*args: str, check: bool = True) -> Any:
        done = subprocess.run([str(command), "sqs", *args, "--endpoint-url", sqs_server.url, "--output", "json"],
                              env=env, capture_output=True, text=True, timeout=120, check=False)
        if not check:
            return done
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout) if done.stdout.strip() else {}

    return run


@pytest.mark.timeout(900)
def test_the_aws_cli(aws: Any, tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    url = aws("create-queue", "--queue-name", name, "--attributes", "VisibilityTimeout=20")["QueueUrl"]
    assert aws("get-queue-url", "--queue-name", name)["QueueUrl"] == url
    assert url in aws("list-queues", "--queue-name-prefix", name)["QueueUrls"]
    sent = aws("send-message", "--queue-url", url, "--message-body", "from the cli", "--message-attributes",
               json.dumps({"k": {"DataType": "String", "StringValue": "v"}}))
    assert sent["MD5OfMessageBody"] == hashlib.md5(b"from the cli").hexdigest()
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps([{"Id": f"e{i}", "MessageBody": f"batch {i}"} for i in range(3)]))
    assert len(aws("send-message-batch", "--queue-url", url, "--entries", f"file://{entries}")["Successful"]) == 3
    attrs = aws("get-queue-attributes", "--queue-url", url, "--attribute-names", "All")["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "4" and attrs["VisibilityTimeout"] == "20"
    got = aws("receive-message", "--queue-url", url, "--max-number-of-messages", "10", "--message-attribute-names",
              "All", "--attribute-names", "All", "--wait-time-seconds", "1")["Messages"]
    bodies = {m["Body"]: m for m in got}
    assert bodies["from the cli"]["MessageAttributes"]["k"]["StringValue"] == "v"
    for m in got:
        aws("delete-message", "--queue-url", url, "--receipt-handle", m["ReceiptHandle"])
    aws("delete-queue", "--queue-url", url)
    missing = aws("get-queue-url", "--queue-name", name, check=False)
    assert missing.returncode != 0
    assert "NonExistentQueue" in missing.stderr or "QueueDoesNotExist" in missing.stderr, missing.stderr
