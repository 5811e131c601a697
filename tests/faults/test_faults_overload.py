"""Overload against real ``broker serve`` processes: a project's rate limit enforced across two processes,
the bound on long polls per process, and a store out of memory (publishers get 503, the queue drains)."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from collections import Counter

import httpx
from loadgen import shape_problem
from support import clean_env, eventually
from support.fleet import Fleet

from broker.store.ratelimit import Limit


def limits_cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli.limits", "limits", *args, "--redis-url", url],
                          env=clean_env(), capture_output=True, text=True, timeout=60)


async def hammer(urls: list[str], key: str, seconds: float, concurrency: int = 8) -> tuple[Counter[int], list[str]]:
    """GET /v1/queue/list from ``concurrency`` clients per server for ``seconds``: statuses, problems."""
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    deadline = time.monotonic() + seconds

    async def client(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            while time.monotonic() < deadline:
                response = await http.get("/v1/queue/list")
                statuses[response.status_code] += 1
                if response.status_code == 429:
                    if shape_problem(response) or int(response.headers["retry-after"]) < 1:
                        problems.append(response.text)
                    await asyncio.sleep(0.01)
                elif response.status_code != 200:
                    problems.append(f"{response.status_code} {response.text}")

    await asyncio.gather(*(client(url) for url in urls for _ in range(concurrency)))
    return statuses, problems


async def test_a_rate_limit_holds_across_processes_and_spares_other_projects(fleet: Fleet) -> None:
    node = fleet.redis(name="store")
    limited, free = f"lim-{uuid.uuid4().hex}", f"free-{uuid.uuid4().hex}"
    keys = f"limited:{limited},free:{free}"
    servers = [fleet.serve(node.url, keys), fleet.serve(node.url, keys)]
    urls = [s.url for s in servers]
    rate, burst = 40.0, 20
    result = limits_cli(node.url, "set", "--project", "limited", "--rate", str(rate), "--burst", str(burst))
    assert result.returncode == 0, result.stderr
    shown = limits_cli(node.url, "show")
    assert shown.stdout.split("\n")[1].split()[:3] == ["limited", "40", "20"], shown.stdout

    seconds = 3.0
    started = time.monotonic()
    (statuses, problems), (free_statuses, free_problems) = await asyncio.gather(
        hammer(urls, limited, seconds), hammer(urls, free, seconds, concurrency=2))
    elapsed = time.monotonic() - started
    chunk = Limit(rate, burst).chunk
    ceiling = burst + rate * elapsed + len(servers) * chunk
    assert not problems and not free_problems, (problems[:3], free_problems[:3])
    assert statuses[429] > 0, statuses
    assert statuses[200] <= ceiling, (statuses, ceiling)
    assert statuses[200] >= 0.6 * rate * seconds, statuses  # the limit is not far below its rate either
    assert set(free_statuses) == {200}, free_statuses  # other projects are not limited

    cleared = limits_cli(node.url, "clear", "--project", "limited")
    assert cleared.returncode == 0, cleared.stderr

    async def unlimited() -> bool:
        statuses, _ = await hammer(urls, limited, 0.2, concurrency=2)
        return set(statuses) == {200}

    await eventually(unlimited, 2.5, interval=0, what="servers no longer limiting")  # within about a second
    after, _ = await hammer(urls, limited, 1.0, concurrency=2)
    assert set(after) == {200}, after
    assert "no project has a rate limit" in limits_cli(node.url, "show").stderr


async def test_long_polls_beyond_the_bound_are_429_and_others_still_served(fleet: Fleet) -> None:
    node = fleet.redis(name="store")
    key = f"lp-{uuid.uuid4().hex}"
    server = fleet.serve(node.url, f"lp:{key}", BROKER_MAX_LONG_POLLS="2")
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as http:
        assert (await http.post("/v1/queue/create", json={"name": "jobs"})).status_code == 200

        async def long_poll() -> tuple[httpx.Response, float]:
            started = time.monotonic()
            response = await http.post("/v1/queue/consume", json={"queue": "jobs", "wait_seconds": 3})
            return response, time.monotonic() - started

        # Three long polls at once on two slots: one is refused at once, whichever comes last; that refusal also
        # shows that the other two hold the slots now (for their 3 s).
        polls = [asyncio.create_task(long_poll()) for _ in range(3)]
        done, _ = await asyncio.wait(polls, timeout=2, return_when=asyncio.FIRST_COMPLETED)
        assert len(done) == 1, done
        refused, elapsed = done.pop().result()
        assert elapsed < 1
        assert refused.status_code == 429 and shape_problem(refused) == "", refused.text
        assert refused.json()["error"]["code"] == "RATE_LIMITED" and refused.headers["retry-after"] == "1"
        polled = await http.post("/v1/queue/consume", json={"queue": "jobs"})  # wait_seconds 0: never bounded
        assert polled.status_code == 200
        assert sorted(r.status_code for r, _ in await asyncio.gather(*polls)) == [200, 200, 429]
        later = await http.post("/v1/queue/consume", json={"queue": "jobs", "wait_seconds": 0.2})
        assert later.status_code == 200, later.text  # the slots were given back


async def test_a_store_out_of_memory_refuses_publishes_and_still_drains(fleet: Fleet) -> None:
    node = fleet.redis("--maxmemory", "3mb", name="store")
    key = f"oom-{uuid.uuid4().hex}"
    server = fleet.serve(node.url, f"oom:{key}")
    payload = {"blob": "x" * 8192}
    async with httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"},
                                 timeout=30) as http:
        assert (await http.post("/v1/queue/create", json={"name": "jobs"})).status_code == 200
        published = 0
        refused: httpx.Response | None = None
        for _ in range(2000):
            response = await http.post("/v1/queue/publish", json={"queue": "jobs", "payload": payload})
            if response.status_code != 200:
                refused = response
                break
            published += 1
        assert refused is not None, "the store never ran out of memory"
        assert published > 10
        assert refused.status_code == 503 and shape_problem(refused) == "", refused.text
        assert "out of memory" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "5"
        batch = await http.post("/v1/queue/publish_batch", json={"queue": "jobs", "messages": [{"payload": payload}]})
        assert batch.status_code == 503
        assert (await http.get("/readyz")).status_code == 200  # the store answers; consumers can drain it

        drained = 0
        while drained < published:
            consumed = await http.post("/v1/queue/consume", json={"queue": "jobs", "max_messages": 50})
            assert consumed.status_code == 200, consumed.text
            messages = consumed.json()["messages"]
            assert messages, f"messages missing: {drained} of {published} drained"
            acked = await http.post("/v1/queue/ack_batch", json={
                "queue": "jobs", "messages": [{"message_id": m["message_id"], "receipt": m["receipt"]}
                                              for m in messages]})
            assert acked.status_code == 200, acked.text
            drained += len(messages)
        assert drained == published
        stats = (await http.get("/v1/queue/stats/jobs")).json()
        assert stats["available"] == stats["in_flight"] == 0
        again = await http.post("/v1/queue/publish", json={"queue": "jobs", "payload": payload})
        assert again.status_code == 200, again.text
    assert "Traceback" not in server.stderr()


def test_chunks_are_small_parts_of_the_rate() -> None:
    assert Limit(40, 20).chunk == 4
    assert Limit(0.5, 3).chunk == 1
    assert Limit(1e6, 10**6).chunk == 100
    assert Limit(1000, 5).chunk == 5
    assert math.isclose(Limit(2.5, 3).rate, 2.5)
