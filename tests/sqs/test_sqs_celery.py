"""A Celery app on kombu's SQS transport (``kombu[sqs]``, in its own virtualenv: tests/sqs/oldclients.py) runs
tasks end to end through the SQS edge, a failing-then-succeeding task included."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from oldclients import venv
from sqskit import boto3_client

PROGRAMS = Path(__file__).parent / "programs"


def wait_for(path: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.timeout(900)
def test_celery_runs_tasks_over_sqs(sqs_server: Any, tmp_path: Path) -> None:
    bin_dir = venv("celery")
    access_key_id, secret = sqs_server.credentials()
    endpoint = urlsplit(sqs_server.url)
    prefix = f"cel{uuid.uuid4().hex[:6]}-"
    out = tmp_path / "out"
    out.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "SQS_HOST": str(endpoint.hostname),
           "SQS_PORT": str(endpoint.port), "SQS_ACCESS_KEY_ID": access_key_id, "SQS_SECRET": secret,
           "SQS_PREFIX": prefix, "CELERY_OUT": str(out), "PYTHONPATH": str(PROGRAMS),
           "AWS_ACCESS_KEY_ID": access_key_id, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
    log = tmp_path / "worker.log"
    with open(log, "wb") as sink:
        worker = subprocess.Popen(
            [str(bin_dir / "celery"), "-A", "celery_app", "worker", "--pool", "solo", "--without-heartbeat",
             "--without-mingle", "--without-gossip", "--loglevel", "INFO"],
            env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    try:
        sent = subprocess.run(
            [str(bin_dir / "python"), "-c", "from celery_app import add, flaky; add.delay(2, 3); flaky.delay('t1')"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert sent.returncode == 0, sent.stderr
        assert wait_for(out / "add-2-3", 60), log.read_text()[-4000:]
        assert (out / "add-2-3").read_text() == "5"
        assert wait_for(out / "flaky-t1.done", 60), log.read_text()[-4000:]
        assert (out / "flaky-t1.done").read_text() == "2"  # failed once, retried through the queue, succeeded
        assert worker.poll() is None, log.read_text()[-4000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
    # The task messages were deleted once done: the queue kombu made is empty.
    sqs = boto3_client(sqs_server)
    urls = sqs.list_queues(QueueNamePrefix=prefix).get("QueueUrls", [])
    assert urls, "kombu made no queue"
    for url in urls:
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages",
                                                                       "ApproximateNumberOfMessagesNotVisible"])
        assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "0",
                                       "ApproximateNumberOfMessagesNotVisible": "0"}, url
        sqs.delete_queue(QueueUrl=url)
