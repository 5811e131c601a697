"""The extra bytes a message may carry (F_EXTRA, publish.lua's column "x", kept for the SQS edge): stored with the
message beside the other columns, returned by every claim, kept through retries, dead-lettering and redrive, and
absent for messages published without them (which keep the short stored form)."""

from __future__ import annotations

from typing import Any

from scriptkit import MakeQueue

from broker.store.keys import ProjectKeys
from broker.store.queues import OutgoingMessage
from broker.store.sqs import SqsStore


async def test_extra_bytes_live_as_long_as_the_message(make_queue: MakeQueue, store: Any, project: str,
                                                       clock: Any) -> None:
    await make_queue("dead")
    queue = await make_queue("q", dead_letter_queue="dead", max_retries=1, enable_priority=True)
    sqs = SqsStore(store)
    sent = await store.publish(project, "q", [
        OutgoingMessage(b'"plain"'),
        OutgoingMessage(b'"with"', priority=5, extra=b'{"a":{"k":["String","v"]}}'),
        OutgoingMessage(b'"delayed"', delay_ms=1000, extra=b"\x00binary\xff"),
    ], batch=True)
    got, _ = await sqs.claim(project, "q", 10, None)
    assert [(d.message_id, d.payload, d.extra) for d in got] == [
        (sent[1], b'"with"', b'{"a":{"k":["String","v"]}}'), (sent[0], b'"plain"', b"")]
    raw = await store.redis.hget(ProjectKeys(project).queue("q").msgs, sent[0])
    assert raw[:1] == b"\x96"  # the plain one keeps the short stored array of a delivered message
    await queue.nack(sent[1])  # retried: delivered again with its bytes
    clock.advance(1500)  # the delay and the plain message's lease end
    again, _ = await sqs.claim(project, "q", 10, None)
    assert {d.message_id: d.extra for d in again} == {sent[1]: b'{"a":{"k":["String","v"]}}',
                                                      sent[2]: b"\x00binary\xff", sent[0]: b""}
    await queue.nack(sent[1])  # its second delivery failed: dead-lettered into "dead"
    assert [d.message_id for d in await queue.dlq()] == [sent[1]]
    assert await queue.redrive() == 1  # back into "q", with its bytes
    back, _ = await sqs.claim(project, "q", 10, None)
    assert [(d.message_id, d.extra) for d in back] == [(sent[1], b'{"a":{"k":["String","v"]}}')]
