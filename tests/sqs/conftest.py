"""Fixtures of the SQS tests: one real ``broker serve`` for the session (its own redis-server), with two
projects' keys given by BROKER_API_KEYS, and boto3 clients of it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqskit import PEPPER, SqsServer, boto3_client
from support.fleet import Fleet


@pytest.fixture(scope="session")
def sqs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqsServer]:
    workdir = tmp_path_factory.mktemp("sqs-server")
    fleet = Fleet(workdir)
    project, other = f"sqs{uuid.uuid4().hex[:8]}", f"other{uuid.uuid4().hex[:8]}"
    key, other_key = f"key-{uuid.uuid4().hex}", f"key-{uuid.uuid4().hex}"
    try:
        node = fleet.redis()
        api = fleet.serve(node.url, f"{project}:{key},{other}:{other_key}", BROKER_SQS_PEPPER=PEPPER)
        yield SqsServer(api.url, node.url, project, key, other, other_key, str(workdir))
    finally:
        fleet.stop_all()


@pytest.fixture
def sqs(sqs_server: SqsServer) -> Any:
    return boto3_client(sqs_server)


@pytest.fixture
def make_queue(sqs: Any) -> Iterator[Callable[..., str]]:
    """Create a queue with a unique name over SQS (attributes as keyword arguments); returns its URL. Every one
    is deleted afterwards."""
    made: list[str] = []

    def make(prefix: str = "q", fifo: bool = False, **attributes: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        if fifo:
            attributes["FifoQueue"] = "true"
        url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        made.append(url)
        return url

    yield make
    for url in reversed(made):
        try:
            sqs.delete_queue(QueueUrl=url)
        except Exception as exc:  # a test that left a queue in use must not hide its own failure
            print(f"could not delete {url}: {exc}")
