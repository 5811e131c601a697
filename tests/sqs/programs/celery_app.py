"""A Celery app on kombu's SQS transport, pointed at the SQS edge (tests/sqs/test_sqs_celery.py). Settings from
the environment: SQS_HOST, SQS_PORT, SQS_ACCESS_KEY_ID, SQS_SECRET, SQS_PREFIX (queue name prefix), CELERY_OUT
(a folder the tasks write their results to)."""

import os
import pathlib
from urllib.parse import quote

from celery import Celery

app = Celery("sqsapp")
app.conf.update(
    broker_url=(f"sqs://{quote(os.environ['SQS_ACCESS_KEY_ID'], safe='')}:{quote(os.environ['SQS_SECRET'], safe='')}"
                f"@{os.environ['SQS_HOST']}:{os.environ['SQS_PORT']}"),
    broker_transport_options={"region": "us-east-1", "is_secure": False, "queue_name_prefix": os.environ["SQS_PREFIX"],
                              "visibility_timeout": 30, "polling_interval": 0.2, "wait_time_seconds": 1},
    broker_connection_retry_on_startup=True,
    worker_enable_remote_control=False,  # SQS has no fanout exchanges
    task_acks_late=True,
    result_backend=None,
)
OUT = pathlib.Path(os.environ["CELERY_OUT"])


@app.task
def add(x: int, y: int) -> int:
    (OUT / f"add-{x}-{y}").write_text(str(x + y))
    return x + y


@app.task(bind=True, max_retries=3)
def flaky(self, token: str) -> str:  # type: ignore[no-untyped-def]
    """Fails on its first attempt (retried by Celery through the queue), succeeds on the second."""
    marker = OUT / f"flaky-{token}.attempts"
    attempts = int(marker.read_text()) if marker.exists() else 0
    marker.write_text(str(attempts + 1))
    if attempts == 0:
        raise self.retry(countdown=1, exc=RuntimeError("the first attempt fails"))
    (OUT / f"flaky-{token}.done").write_text(str(attempts + 1))
    return token
