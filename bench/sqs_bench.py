"""The SQS edge against the native API, in one run (docs/sqs.md, "Speed"): messages per second of

- SendMessageBatch of 10 against the native publish_batch of 10, and
- ReceiveMessage(10) + DeleteMessageBatch against the native consume(10) + ack_batch,

on the same API process (uvicorn, one worker) and private redis-server (AOF, fsync always), SigV4 verified on
every SQS request. One load generator drives both: keep-alive connections on asyncio streams, the native
requests with a bearer key, the SQS ones signed here (the signer caches its daily key, as SDKs do).

    .venv/bin/python -m bench.sqs_bench [--seconds 5] [--connections 16] [--rounds 3] [--json] [--profile DIR]

``--profile DIR`` then drives each of the four steps once more while py-spy samples the API process, and writes
``DIR/<step>.collapsed`` (read with ``python -m bench.pyspy --top FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import hmac
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench import pyspy
from bench.machine import CpuMeter
from bench.procs import api_env, http_server, redis_server
from broker.store.sqskeys import derive

BODY = "x" * 100
REGION = "us-east-1"


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)


def native_request(port: int, key: str, path: str, payload: Any) -> tuple[bytes, bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    return head, body


class Signer:
    """SigV4 for the JSON protocol's POST / (host, x-amz-date, x-amz-target signed)."""

    def __init__(self, port: int, access_key_id: str, secret: str):
        self.host = f"127.0.0.1:{port}"
        self.access_key_id, self.secret = access_key_id, secret
        self._keys: dict[str, bytes] = {}

    def _key(self, date: str) -> bytes:
        key = self._keys.get(date)
        if key is None:
            key = hmac.new(("AWS4" + self.secret).encode(), date.encode(), hashlib.sha256).digest()
            for part in (REGION, "sqs", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys[date] = key
        return key

    def request(self, action: str, payload: Any) -> tuple[bytes, bytes]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        amz_date = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        date = amz_date[:8]
        target = f"AmazonSQS.{action}"
        canonical = (f"POST\n/\n\nhost:{self.host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n\n"
                     f"host;x-amz-date;x-amz-target\n{hashlib.sha256(body).hexdigest()}")
        scope = f"{date}/{REGION}/sqs/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._key(date), to_sign.encode(), hashlib.sha256).hexdigest()
        head = (f"POST / HTTP/1.1\r\nHost: {self.host}\r\nX-Amz-Date: {amz_date}\r\nX-Amz-Target: {target}\r\n"
                f"Content-Type: application/x-amz-json-1.0\r\nContent-Length: {len(body)}\r\n"
                f"Authorization: AWS4-HMAC-SHA256 Credential={self.access_key_id}/{scope}, "
                f"SignedHeaders=host;x-amz-date;x-amz-target, Signature={signature}\r\n\r\n").encode()
        return head, body


def cpu_seconds(pids: tuple[int, ...]) -> float:
    """User and system CPU time used so far by the processes ``pids`` (the API and its redis-server)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


#: What ``drive`` measured last: messages and the CPU seconds the server processes spent on them.
LAST: dict[str, float] = {}
SERVER_PIDS: tuple[int, ...] = ()


async def drive(port: int, connections: int, seconds: float,
                step: Callable[[Connection], Awaitable[int]]) -> float:
    """Messages per second of ``step`` (messages it handled; 0 ends that connection) on ``connections`` for
    ``seconds``; also keeps, in ``LAST``, the server's CPU microseconds per message (API process and Redis): a
    figure the machine's other load moves far less than throughput."""
    opened = [await Connection.open(port) for _ in range(connections)]
    deadline = time.perf_counter() + seconds
    counts = [0] * connections

    async def loop(i: int) -> None:
        while time.perf_counter() < deadline:
            done = await step(opened[i])
            if done == 0:
                return
            counts[i] += done

    started, cpu = time.perf_counter(), [cpu_seconds((pid,)) for pid in SERVER_PIDS]
    await asyncio.gather(*(loop(i) for i in range(connections)))
    elapsed = time.perf_counter() - started
    spent = [(cpu_seconds((pid,)) - before) * 1e6 / max(1, sum(counts)) for pid, before in zip(SERVER_PIDS, cpu,
                                                                                               strict=True)]
    LAST["cpu_us_per_message"] = sum(spent)
    LAST["api_cpu_us_per_message"], LAST["redis_cpu_us_per_message"] = spent
    for connection in opened:
        connection.writer.close()
    return sum(counts) / elapsed


async def measure(port: int, key: str, seconds: float, connections: int, rounds: int,
                  profile: Path | None = None) -> dict[str, Any]:
    signer = Signer(port, *derive(key))
    native_queue, sqs_queue = f"nat-{uuid.uuid4().hex[:6]}", f"sqs-{uuid.uuid4().hex[:6]}"
    setup = await Connection.open(port)
    await setup.post(*native_request(port, key, "/v1/queue/create", {"name": native_queue}))
    status, answer = await setup.post(*signer.request("CreateQueue", {"QueueName": sqs_queue}))
    if status != 200:
        raise SystemExit(f"CreateQueue failed: {status} {answer[:200]!r}")
    queue_url = json.loads(answer)["QueueUrl"]
    publish = native_request(port, key, "/v1/queue/publish_batch",
                             {"queue": native_queue, "messages": [{"payload": BODY} for _ in range(10)]})
    entries = [{"Id": f"m{i}", "MessageBody": BODY} for i in range(10)]

    async def native_publish(c: Connection) -> int:
        status, _ = await c.post(*publish)
        return 10 if status == 200 else 0

    # Requests that are the same every time are signed once (valid for 15 minutes), as the native ones are built
    # once: the load generator shares the machine with the server, and its own work is not what is measured.
    send = signer.request("SendMessageBatch", {"QueueUrl": queue_url, "Entries": entries})
    receive = signer.request("ReceiveMessage", {"QueueUrl": queue_url, "MaxNumberOfMessages": 10})

    async def sqs_send(c: Connection) -> int:
        status, _ = await c.post(*send)
        return 10 if status == 200 else 0

    async def native_consume(c: Connection) -> int:
        status, answer = await c.post(*native_request(port, key, "/v1/queue/consume",
                                                      {"queue": native_queue, "max_messages": 10}))
        messages = json.loads(answer)["messages"] if status == 200 else []
        if not messages:
            return 0
        acks = [{"message_id": m["message_id"], "receipt": m["receipt"]} for m in messages]
        status, _ = await c.post(*native_request(port, key, "/v1/queue/ack_batch",
                                                 {"queue": native_queue, "messages": acks}))
        return len(messages) if status == 200 else 0

    async def sqs_receive(c: Connection) -> int:
        status, answer = await c.post(*receive)
        messages = json.loads(answer).get("Messages", []) if status == 200 else []
        if not messages:
            return 0
        batch = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]
        status, _ = await c.post(*signer.request("DeleteMessageBatch", {"QueueUrl": queue_url, "Entries": batch}))
        return len(messages) if status == 200 else 0

    # Each pair runs back to back, in rounds: the machine's other load drifts, and a ratio of two figures
    # measured seconds apart is steadier than one of figures measured a minute apart. The figures are medians.
    figures: dict[str, list[float]] = {name: [] for name in (
        "native_publish_batch", "sqs_send_message_batch", "native_consume_ack_batch", "sqs_receive_delete_batch")}
    ratios: dict[str, list[float]] = {"send_ratio": [], "receive_ratio": [], "send_cpu_ratio": [],
                                      "receive_cpu_ratio": []}
    # the other processes' load during each pair (cores busy outside the API, its Redis and this generator)
    figures["other_cores"] = []
    # server CPU microseconds per message, the API process and Redis apart
    cpu_us: dict[str, list[float]] = {f"{api}_{kind}_{part}": [] for api in ("native", "sqs")
                                      for kind in ("send", "receive") for part in ("api", "redis")}
    pairs = (("native_publish_batch", native_publish, "sqs_send_message_batch", sqs_send, "send", seconds),
             # the consumes take what the publishes left, for less time, so no queue runs dry
             ("native_consume_ack_batch", native_consume, "sqs_receive_delete_batch", sqs_receive, "receive",
              seconds / 2))
    for native_name, native_step, sqs_name, sqs_step, kind, duration in pairs:
        for _ in range(rounds):
            meter = CpuMeter()
            native_rate = await drive(port, connections, duration, native_step)
            native_cpu = LAST["cpu_us_per_message"]
            cpu_us[f"native_{kind}_api"].append(LAST["api_cpu_us_per_message"])
            cpu_us[f"native_{kind}_redis"].append(LAST["redis_cpu_us_per_message"])
            sqs_rate = await drive(port, connections, duration, sqs_step)
            cpu_us[f"sqs_{kind}_api"].append(LAST["api_cpu_us_per_message"])
            cpu_us[f"sqs_{kind}_redis"].append(LAST["redis_cpu_us_per_message"])
            figures[native_name].append(native_rate)
            figures[sqs_name].append(sqs_rate)
            ratios[f"{kind}_ratio"].append(sqs_rate / native_rate)
            # messages per CPU second, SQS over native: above 1 when an SQS message costs the server less
            ratios[f"{kind}_cpu_ratio"].append(native_cpu / LAST["cpu_us_per_message"])
            figures["other_cores"].append(meter.stop().get("other_cores", 0.0))
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        for name, step, duration in (("native_publish_batch", native_publish, seconds),
                                     ("sqs_send_message_batch", sqs_send, seconds),
                                     ("native_consume_ack_batch", native_consume, seconds / 2),
                                     ("sqs_receive_delete_batch", sqs_receive, seconds / 2)):
            recording = asyncio.create_task(asyncio.to_thread(
                pyspy.record, SERVER_PIDS[0], duration, profile / f"{name}.collapsed"))
            await drive(port, connections, duration + 1, step)
            await recording
    # The best of each side over the rounds: other load only ever adds time, so the fastest round of each is the
    # least disturbed one (the medians above say how much the rounds spread).
    best = {
        "send_ratio_best": max(figures["sqs_send_message_batch"]) / max(figures["native_publish_batch"]),
        "receive_ratio_best": max(figures["sqs_receive_delete_batch"]) / max(figures["native_consume_ack_batch"]),
    }
    for kind in ("send", "receive"):
        native_best = min(a + r for a, r in zip(cpu_us[f"native_{kind}_api"], cpu_us[f"native_{kind}_redis"],
                                                strict=True))
        sqs_best = min(a + r for a, r in zip(cpu_us[f"sqs_{kind}_api"], cpu_us[f"sqs_{kind}_redis"], strict=True))
        best[f"{kind}_cpu_ratio_best"] = native_best / sqs_best
    every = {**figures, **ratios, **{f"cpu_us_{name}": values for name, values in cpu_us.items()}}
    result: dict[str, Any] = {name: statistics.median(values) for name, values in every.items()}
    result["rounds"] = {name: [round(v, 2) for v in values] for name, values in every.items()}
    result.update(best)
    result["rounds"].update({name: [round(value, 2)] for name, value in best.items()})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="pairs of measurements; the medians are reported")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="also record each step with py-spy into DIR")
    args = parser.parse_args()
    project, key = f"bench{uuid.uuid4().hex[:6]}", f"key-{uuid.uuid4().hex}"
    with redis_server() as redis:
        env = {**api_env(redis.url, project, key), "BROKER_SQS_PEPPER": "bench-pepper-0123456789"}
        with http_server("broker.http.app:app_from_env", env) as api:
            global SERVER_PIDS
            SERVER_PIDS = (api.pid, redis.proc.pid)
            result = asyncio.run(measure(api.port, key, args.seconds, args.connections, args.rounds,
                                           args.profile))
    if args.json:
        print(json.dumps(result))
        return
    for name, value in result.items():
        if name != "rounds":
            unit = ("" if "ratio" in name else " cores" if name == "other_cores" else " us/msg" if "cpu_us" in name
                    else " msgs/s")
            print(f"{name:28} {value:10.2f}{unit}   {result['rounds'][name]}")
    print("goal: both ratios >= 0.80:", "met" if min(result["send_ratio"], result["receive_ratio"]) >= 0.8
          else "NOT met")


if __name__ == "__main__":
    main()
