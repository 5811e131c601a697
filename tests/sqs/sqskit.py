"""Helpers of the SQS tests: the real server they talk to (``broker serve`` on a redis-server of its own, its
SQS edge on the same port), SQS credentials of its keys, and clients made with the real SDKs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.store.sqskeys import derive

PEPPER = "test-pepper-0123456789abcdef"
REGION = "us-east-1"


@dataclass(frozen=True)
class SqsServer:
    url: str
    redis_url: str
    project: str
    key: str
    other_project: str
    other_key: str
    workdir: str

    def credentials(self, key: str | None = None) -> tuple[str, str]:
        return derive(key or self.key)


def boto3_client(server: SqsServer, key: str | None = None, **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    access_key_id, secret = server.credentials(key)
    return boto3.client(
        "sqs", endpoint_url=server.url, region_name=REGION, aws_access_key_id=access_key_id,
        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}, **config),
    )
