from __future__ import annotations


async def test_create_publish_consume_ack(api):
    await api.ok("POST", "/v1/queue/create", {"name": "jobs"})
    published = await api.ok("POST", "/v1/queue/publish", {"queue": "jobs", "payload": {"n": 1}})
    consumed = await api.ok("POST", "/v1/queue/consume", {"queue": "jobs"})
    [message] = consumed["messages"]
    assert message["message_id"] == published["message_id"]
    assert message["payload"] == {"n": 1}
    acked = await api.ok("POST", "/v1/queue/ack", {"queue": "jobs", "message_id": message["message_id"]})
    assert acked == {"message_id": message["message_id"], "acked": True}
    stats = await api.ok("GET", "/v1/queue/stats/jobs")
    assert (stats["available"], stats["in_flight"]) == (0, 0)
