"""Concurrent script calls of one process share one pipelined connection (``broker/store/pipeline.py``); each
caller still gets its own reply or error, in order, whatever the others get."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from support import eventually

from broker import errors
from broker.schemas import CreateQueueRequest
from broker.store.pipeline import ScriptPipe, pack_evalsha
from broker.store.queues import OutgoingMessage, Store
from broker.store.scripts import Scripts


@pytest.fixture
async def piped(redis_client: Any, project: str, clock: Any) -> AsyncIterator[Store]:
    """A store whose scripts go through a pipe of their own, with queue "q" created; the pipe is closed after."""
    scripts = Scripts(redis_client)
    await scripts.load()
    store = Store(redis_client, scripts, clock)
    await store.create_queue(project, CreateQueueRequest(name="q"))
    assert scripts.pipe is not None
    yield store
    await scripts.close()


def count_writes(pipe: ScriptPipe) -> list[int]:
    """The number of calls each socket write of ``pipe`` carried, as they happen."""
    sizes: list[int] = []
    flush = pipe._flush

    def counting() -> None:
        sizes.append(len(pipe._outgoing))
        flush()

    pipe._flush = counting  # type: ignore[method-assign]
    return sizes


async def test_concurrent_calls_share_a_write_and_keep_their_own_results(piped: Store, project: str) -> None:
    store = piped
    writes = count_writes(store.scripts.pipe)  # type: ignore[arg-type]
    calls = [store.publish(project, "q", [OutgoingMessage(b'{"n":%d}' % i)], batch=False) for i in range(50)]
    calls.append(store.publish(project, "missing", [OutgoingMessage(b"1")], batch=False))
    calls.append(store.claim(project, "q", 0, None))  # refused by the script: not a valid count
    results = await asyncio.gather(*calls, return_exceptions=True)
    ids = [r[0] for r in results[:50]]
    assert len(set(ids)) == 50 and all(isinstance(i, str) for i in ids)
    assert isinstance(results[50], errors.QueueNotFound)
    assert isinstance(results[51], errors.BrokerError)
    assert writes == [52]  # all of them in one write
    stats = await store.stats(project, "q")
    assert stats.available == 50


async def test_a_caller_that_goes_away_does_not_shift_the_replies_of_the_others(piped: Store, project: str) -> None:
    store = piped
    tasks = [asyncio.ensure_future(store.publish(project, "q", [OutgoingMessage(b"%d" % i)], batch=False))
             for i in range(20)]
    await asyncio.sleep(0)  # the calls are queued
    for task in tasks[::2]:
        task.cancel()
    done = await asyncio.gather(*tasks[1::2])
    # Each survivor got the id of its own message: the payload it sent comes back under that id.
    claimed = await store.claim(project, "q", 100, None)
    by_id = {m.message_id: bytes(m.payload) for m in claimed[0]}
    for i, (message_id,) in zip(range(1, 20, 2), done, strict=True):
        assert by_id[message_id] == b"%d" % i


async def test_noscript_inside_a_pipeline_reloads(piped: Store, project: str, redis_client: Any) -> None:
    store = piped
    # Every client of this Redis reloads on its next NOSCRIPT, as this one does here.
    await redis_client.script_flush()
    results = await asyncio.gather(
        *[store.publish(project, "q", [OutgoingMessage(b"1")], batch=False) for _ in range(10)]
    )
    assert len({r[0] for r in results}) == 10


@pytest.mark.parametrize("coalesce", [True, False])
async def test_both_paths_map_errors_the_same(redis_client: Any, project: str, clock: Any, coalesce: bool) -> None:
    scripts = Scripts(redis_client, coalesce=coalesce)
    assert (scripts.pipe is not None) == coalesce
    store = Store(redis_client, scripts, clock)
    with pytest.raises(errors.QueueNotFound):
        await store.claim(project, "nope", 1, None)
    await scripts.close()


async def test_a_killed_connection_fails_its_calls_and_the_next_call_reconnects(
    piped: Store, project: str, redis_client: Any
) -> None:
    store = piped
    pipe = store.scripts.pipe
    assert pipe is not None and pipe._writer is not None
    host, port = pipe._writer.get_extra_info("sockname")[:2]
    # The store drops the connection while a call is on its way: that call fails as unavailable (a 503).
    call = asyncio.ensure_future(store.publish(project, "q", [OutgoingMessage(b"1")], batch=False))
    await redis_client.execute_command("CLIENT", "KILL", "ADDR", f"{host}:{port}")
    try:
        await call
    except errors.Unavailable:
        pass  # killed before Redis ran it, or after: either way it did not hang
    # Later calls get a new connection.
    await eventually(lambda: store.publish(project, "q", [OutgoingMessage(b"2")], batch=False), 2.5, interval=0.05,
                     ignoring=(errors.Unavailable,), what="a call on a new connection")
    assert pipe._writer is not None and pipe._writer.get_extra_info("sockname")[1] != port


async def test_closed_pipe_fails_waiting_calls_and_leaves_nothing_running(piped: Store, project: str) -> None:
    store = piped
    scripts = store.scripts
    assert scripts.pipe is not None
    reader = scripts.pipe._reader_task
    pending = asyncio.ensure_future(store.publish(project, "q", [OutgoingMessage(b"1")], batch=False))
    await asyncio.sleep(0)
    await scripts.close()
    with pytest.raises(errors.Unavailable):
        await pending
    assert reader is not None and reader.done()


async def test_packing_matches_the_generic_client(redis_client: Any) -> None:
    conn = redis_client.connection_pool.make_connection()
    args = ("k1", "{t}:x", "ünï", b"\x00\xffbin", 0, -12, 2**53)
    generic = b"".join(conn.pack_command("EVALSHA", "a" * 40, 2, *args))
    assert pack_evalsha("a" * 40, args[:2], args[2:]) == generic
    with pytest.raises(TypeError):
        pack_evalsha("a" * 40, [], [None])


async def test_a_frozen_store_times_out_instead_of_hanging(unused_tcp_port: int) -> None:
    """A store that accepts and then never answers: the calls in flight fail after the timeout."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", unused_tcp_port)
    client = aioredis.Redis(port=unused_tcp_port, socket_timeout=0.3, socket_connect_timeout=1,
                            lib_name=None, lib_version=None)
    scripts = Scripts(client, {})
    assert scripts.pipe is not None
    with pytest.raises(redis_errors.TimeoutError):  # not a hang: the test's own timeout would catch that
        await scripts.pipe.evalsha("a" * 40, [], [])
    assert scripts.pipe._writer is None  # dropped; the next call connects again
    await scripts.close()
    await client.aclose()
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_noscript_loads_the_script_on_the_node_the_pipe_reaches(tmp_path: Any, clock: Any) -> None:
    """After a failover the pipe's new connection may reach a node without the scripts while the client's other
    connections still reach another node (both primaries for a moment, or the old one back as a replica): the
    script is then loaded through the pipe itself (EVAL), so the retry does not fail with NOSCRIPT again (it
    did: a 500 in a Sentinel failover run)."""
    from support.fleet import Fleet

    fleet = Fleet(tmp_path)
    try:
        reached, other = fleet.redis(), fleet.redis()
        pipe_client = aioredis.Redis.from_url(reached.url)
        scripts = Scripts(pipe_client)  # the pipe is made from this client's pool: it reaches `reached`
        scripts.redis = aioredis.Redis.from_url(other.url)  # where a load through another connection would go
        store = Store(pipe_client, scripts, clock)
        await store.create_queue("p", CreateQueueRequest(name="q"))  # NOSCRIPT on `reached`, loaded there
        ids = await asyncio.gather(*[store.publish("p", "q", [OutgoingMessage(b"%d" % i)], batch=False)
                                     for i in range(5)])
        assert len({i[0] for i in ids}) == 5
        with other.client() as direct:
            assert direct.script_exists(scripts.lua.publish.sha) == [False]  # nothing was loaded there
        await scripts.close()
        await scripts.redis.aclose()
        await pipe_client.aclose()
    finally:
        fleet.stop_all()
