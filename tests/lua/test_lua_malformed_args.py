"""Malformed arguments: a script given a bad number (or a bad setting) replies with an error and changes
nothing. And the loader: a flushed script cache is refilled on demand (NOSCRIPT)."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from scriptkit import MakeQueue, message

from broker import errors
from broker.store.keys import ProjectKeys, project_tag
from broker.store.scripts import Library, Scripts, load_all

NOT_A_NUMBER = ["abc", "1.5", "nan", "inf", "-inf", "1e400", "0x", "9007199254740993000"]
NOT_NOW = [*NOT_A_NUMBER, ""]
NEGATIVE = ["-1"]

# Scripts of other features (push delivery, rate limits), tested with them; every other script needs a row.
OTHER_FEATURES = {"maintain", "subscribe", "unsubscribe", "list_subscriptions", "push_ack", "push_fail",
                  "set_rate_limit", "take_tokens"}


@dataclass
class World:
    """A project with a standard queue "jobs" (DLQ "dead"), holding one leased message ``leased``."""

    pk: ProjectKeys
    now: int
    leased: str

    @property
    def tag(self) -> str:
        return self.pk.tag

    def cfg(self, name: str = "jobs") -> str:
        return self.pk.queue(name).cfg


Call = Callable[[World], tuple[list[str], list[Any]]]

#: Script -> a call that succeeds on the World. The table below spoils one argument at a time.
VALID: dict[str, Call] = {
    "publish": lambda w: ([w.cfg(), w.pk.seq, w.tag, w.pk.account],
                          [w.tag, "jobs", w.now, "", "messages", 1, "dp", b'{"a":1}', 1000, 3]),
    "claim": lambda w: ([w.cfg(), w.pk.account], [w.tag, "jobs", w.now, 10, "", 1000, "0" * 32]),
    "ack": lambda w: ([w.cfg(), w.tag, w.pk.account], [w.tag, "jobs", w.now, "", "message_id", w.leased, ""]),
    "nack": lambda w: ([w.cfg(), w.tag, w.pk.account], [w.tag, "jobs", w.now, "", w.leased, "", "1", 0, "nack", ""]),
    "extend": lambda w: ([w.cfg(), w.pk.account], [w.tag, "jobs", w.now, w.leased, "", 1000]),
    "stats": lambda w: ([w.cfg(), w.pk.account], [w.tag, "jobs", w.now, 1000]),
    "dlq_list": lambda w: ([w.cfg(), w.pk.account], [w.tag, "jobs", w.now, "", "", 10]),
    "redrive": lambda w: ([w.cfg(), w.tag, w.pk.account], [w.tag, "jobs", w.now, "", "", "-inf", ""]),
    "purge": lambda w: ([w.cfg(), w.tag, w.pk.account], [w.tag, "jobs", w.now, ""]),
    "create_queue": lambda w: ([w.cfg("new"), w.pk.queues, w.tag, w.pk.account],
                               [w.tag, "new", w.now, "", "standard", "", 5, 4, 30, 0]),
    "update_queue": lambda w: ([w.cfg(), w.tag, w.pk.account],
                               [w.tag, "jobs", "", w.now, "max_retries", 3, "visibility", 10]),
    "get_queue": lambda w: ([w.cfg(), w.pk.account], [w.tag, "jobs", w.now]),
    "list_queues": lambda w: ([w.pk.queues, w.pk.account], [w.tag, "", 10, w.now]),
    "queue_metrics": lambda w: ([w.pk.queues], [w.tag, w.now, "", 10]),
    "delete_queue": lambda w: ([w.cfg("new"), w.pk.queues, w.pk.subscriptions, w.pk.account], [w.tag, "new", w.now]),
    "peek": lambda w: ([w.cfg()], [w.tag, "jobs", "avail", "", "", 10]),
    "peek_message": lambda w: ([w.cfg()], [w.tag, "jobs", w.leased]),
    "history": lambda w: ([w.cfg()], [w.tag, "jobs"]),
    "overview": lambda w: ([w.pk.queues], [w.tag, w.now, "", 10]),
    "sqs_attributes": lambda w: ([w.cfg()], [w.tag, "jobs", 1, "DelaySeconds", "5", "tag:gone"]),
}

#: (script, 1-based ARGV index, bad values).
TABLE: list[tuple[str, int, list[str]]] = [
    ("publish", 3, NOT_NOW),
    ("publish", 6, [*NOT_NOW, *NEGATIVE, "0", "2"]),
    ("publish", 7, ["", "d", "pd", "dpx", "dpp"]),  # the columns given after the payload
    ("publish", 9, [*NOT_NOW, *NEGATIVE, "345600000"]),  # delay; the last is the retention period
    ("publish", 10, [*NOT_NOW, *NEGATIVE, "10"]),  # priority
    ("claim", 3, NOT_NOW),
    ("claim", 4, [*NOT_NOW, *NEGATIVE, "0"]),
    ("claim", 5, [*NOT_A_NUMBER, *NEGATIVE]),  # "" is the queue's default
    ("claim", 6, [*NOT_NOW, *NEGATIVE, "0"]),
    ("ack", 3, NOT_NOW),
    ("nack", 3, NOT_NOW),
    ("nack", 8, [*NOT_NOW, *NEGATIVE]),
    ("extend", 3, NOT_NOW),
    ("extend", 6, [*NOT_NOW, *NEGATIVE]),
    ("stats", 3, NOT_NOW),
    ("stats", 4, [*NOT_NOW, *NEGATIVE, "0"]),
    ("dlq_list", 3, NOT_NOW),
    ("dlq_list", 6, [*NOT_NOW, *NEGATIVE, "0"]),
    ("redrive", 3, NOT_NOW),
    ("redrive", 6, ["abc", "nan", "inf", "1.5", ""]),  # since; "-inf" means all
    ("redrive", 7, [*NOT_A_NUMBER, *NEGATIVE, "0"]),  # max; "" means no limit
    ("purge", 3, NOT_NOW),
    ("create_queue", 3, NOT_NOW),
    ("create_queue", 5, ["", "Standard", "lifo"]),
    ("create_queue", 6, ["new"]),  # its own dead-letter queue
    ("create_queue", 7, [*NOT_NOW, *NEGATIVE]),
    ("create_queue", 8, [*NOT_NOW, *NEGATIVE, "0"]),
    ("create_queue", 9, [*NOT_NOW, *NEGATIVE]),
    ("create_queue", 10, ["", "2", "true"]),
    ("update_queue", 4, NOT_NOW),
    ("update_queue", 5, ["type", "created_ms", "bogus", ""]),  # not a setting that can change
    ("update_queue", 6, [*NOT_NOW, *NEGATIVE]),
    ("update_queue", 8, [*NOT_NOW, *NEGATIVE]),
    ("get_queue", 3, NOT_NOW),
    ("delete_queue", 3, NOT_NOW),
    ("list_queues", 3, [*NOT_NOW, *NEGATIVE, "0"]),
    ("list_queues", 4, NOT_NOW),
    ("queue_metrics", 2, NOT_NOW),
    ("queue_metrics", 4, [*NOT_NOW, *NEGATIVE, "0"]),
    ("peek", 3, ["", "dead", "msgs", "cfg"]),  # only the three waiting and in-flight structures
    ("peek", 4, NOT_A_NUMBER),  # "" is the first page
    ("peek", 6, [*NOT_NOW, *NEGATIVE, "0"]),
    ("overview", 2, NOT_NOW),
    ("overview", 4, [*NOT_NOW, *NEGATIVE, "0"]),
    ("sqs_attributes", 3, [*NOT_NOW, *NEGATIVE, "3"]),  # more pairs than given
]

#: The bad values that are a client's mistake the API also refuses (400); every other one is a caller's bug (500).
CLIENT_MISTAKES: dict[tuple[str, int, str], type[errors.BrokerError]] = {
    ("publish", 9, "345600000"): errors.ValidationError,
    ("create_queue", 6, "new"): errors.ValidationError,
}


@pytest.fixture
async def world(store: Any, project: str, make_queue: MakeQueue, clock: Any) -> World:
    """Messages in every state: available, delayed, leased, dead-lettered (in the DLQ), and a FIFO line."""
    await make_queue("dead")
    jobs = await make_queue("jobs", dead_letter_queue="dead", max_retries=1)
    fifo = await make_queue("f", type="fifo")
    await fifo.publish(message(group="g"), message(group="g"))
    await fifo.claim(1)
    doomed = await jobs.publish_one(0)
    await jobs.claim()
    await jobs.nack(doomed, requeue=False)
    leased = await jobs.publish_one(1)
    await jobs.claim(visibility=600)
    await jobs.publish(2, 3)
    await jobs.publish_one(4, delay=60)
    return World(ProjectKeys(project), clock(), leased)


async def snapshot(redis_client: Any, project: str) -> dict[str, Any]:
    """Every key of the project with its full content."""
    pattern = project_tag(project).replace("{", "\\{").replace("}", "\\}") + ":*"
    content: dict[str, Any] = {}
    async for raw in redis_client.scan_iter(match=pattern, count=1000):
        key = raw.decode()
        kind = (await redis_client.type(key)).decode()
        if kind == "hash":
            content[key] = await redis_client.hgetall(key)
        elif kind == "zset":
            content[key] = await redis_client.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            content[key] = await redis_client.smembers(key)
        else:
            content[key] = await redis_client.get(key)
    return content


def test_the_table_covers_every_lifecycle_script() -> None:
    assert set(VALID) == set(load_all()) - OTHER_FEATURES
    assert {script for script, _, _ in TABLE} <= set(VALID)


@pytest.mark.parametrize("script", sorted(VALID))
async def test_the_valid_call_succeeds(script: str, world: World, store: Any) -> None:
    keys, args = VALID[script](world)
    await store.scripts.run(getattr(store.lua, script), keys, args)


@pytest.mark.parametrize(("script", "index", "bad_values"), TABLE, ids=[f"{s}-ARGV{i}" for s, i, _ in TABLE])
async def test_bad_argument_is_an_error_and_changes_nothing(
    script: str, index: int, bad_values: list[str], world: World, store: Any, redis_client: Any, project: str
) -> None:
    before = await snapshot(redis_client, project)
    keys, valid = VALID[script](world)
    for bad in bad_values:
        args = list(valid)
        args[index - 1] = bad
        expected = CLIENT_MISTAKES.get((script, index, bad), errors.InternalError)
        with pytest.raises(errors.BrokerError) as raised:  # never a raw Redis error
            await store.scripts.run(getattr(store.lua, script), keys, args)
        assert type(raised.value) is expected, (script, index, bad, raised.value)
        assert await snapshot(redis_client, project) == before, f"{script} ARGV[{index}]={bad!r} changed the store"


@pytest.mark.parametrize("script", sorted(set(VALID) - {"list_queues", "queue_metrics"}))
async def test_keys_must_match_the_named_queue(script: str, world: World, store: Any, redis_client: Any,
                                                project: str) -> None:
    before = await snapshot(redis_client, project)
    keys, args = VALID[script](world)
    args[1] = "f"  # KEYS[1] names another queue
    with pytest.raises(errors.InternalError):
        await store.scripts.run(getattr(store.lua, script), keys, args)
    assert await snapshot(redis_client, project) == before


async def test_wrong_number_of_keys_is_refused_before_the_call(world: World, store: Any) -> None:
    keys, args = VALID["stats"](world)
    with pytest.raises(errors.InternalError):
        await store.scripts.run(store.lua.stats, [*keys, world.tag], args)


async def test_noscript_reloads_and_retries(redis_client: Any, store: Any, world: World) -> None:
    # A variant of the stats script that no other client of this shared server loads.
    library = Library.load()
    source = f"{library.stats.source}\n-- {uuid.uuid4().hex}\n"
    variant = dataclasses.replace(library.stats, source=source, sha=hashlib.sha1(source.encode()).hexdigest())
    scripts = Scripts(redis_client, dataclasses.replace(library, stats=variant))
    keys, args = VALID["stats"](world)
    first = await scripts.run(variant, keys, args)  # never loaded: NOSCRIPT, load, retry
    assert [int(v) for v in first[:4]] == [2, 1, 1, 1]  # available, in flight, delayed, dlq
    assert await redis_client.script_exists(variant.sha) == [True]
    await redis_client.script_flush()
    assert await redis_client.script_exists(variant.sha) == [False]
    assert await scripts.run(variant, keys, args) == first
    assert await redis_client.script_exists(variant.sha) == [True]
    await scripts.close()
    # The store's own scripts come back the same way.
    assert (await store.stats(world.pk.project, "jobs")).available == 2
