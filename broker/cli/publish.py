"""``broker publish QUEUE [JSON] [--file F.jsonl | -]``: publish one message, or every line of a file or of
stdin (one JSON payload per line, blank lines skipped).

A file is streamed: read line by line, checked as JSON (the error names the line), and sent in batches of up to
1,000 messages (and under the 4 MiB request limit) with ``--concurrency`` batches in flight; memory stays flat
whatever the file's size. Every batch carries an idempotency key, ``<prefix>:<first line number>``, so a batch
retried after a lost answer is stored once; the prefix is random unless ``--idempotency-key`` gives it, and then
running the same command on the same file again (within 24 hours) stores only the batches that were not
stored yet: the way to resume after a failure or an interruption. On a terminal a progress bar shows messages,
rate and (for a file) the time left.

FIFO queues get one batch in flight at a time (so the file's order is the delivery order), unless
``--concurrency`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import msgspec
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from broker.cli.common import CliError
from broker.cli.remote import CLIENT_HELP, client_command, client_options, print_json, usage_error
from broker.client import BrokerError, Client

MAX_BATCH_MESSAGES = 1000
#: The server's limit on a publish_batch body, less room for the envelope (queue, key, brackets).
MAX_BATCH_BYTES = 4 * 1024 * 1024 - 16 * 1024
DEFAULT_CONCURRENCY = 4
_FIELD = re.compile(r"^messages\[(\d+)\](.*)$")
_decode_raw = msgspec.json.Decoder(msgspec.Raw).decode


@dataclass
class Batch:
    """Consecutive payloads of the input, with their line numbers."""

    payloads: list[msgspec.Raw] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    size: int = 0  #: bytes of input they came from (newlines included), for the progress bar
    body_size: int = 0


def payload_of(text: bytes, where: str) -> msgspec.Raw:
    """``text`` checked as a JSON payload (not null), ready to send as it is."""
    try:
        raw = _decode_raw(text)
    except msgspec.DecodeError as exc:
        raise CliError(f"{where}: not JSON ({exc})") from None
    if bytes(raw) == b"null":
        raise CliError(f"{where}: a payload cannot be null")
    return raw


def read_batches(stream: BinaryIO, batch_size: int, overhead: int, max_bytes: int = MAX_BATCH_BYTES) -> Iterator[Batch]:
    """The payloads of ``stream`` (one per line) in batches of at most ``batch_size`` messages and
    ``max_bytes`` of request body (``overhead``: bytes each message adds besides its payload)."""
    batch = Batch()
    for number, line in enumerate(stream, 1):
        text = line.strip()
        if not text:
            batch.size += len(line)
            continue
        item = len(text) + overhead
        if item > max_bytes:
            raise CliError(f"line {number}: {len(text):,} bytes, more than one request can carry")
        if batch.payloads and (len(batch.payloads) >= batch_size or batch.body_size + item > max_bytes):
            yield batch
            batch = Batch()
        batch.payloads.append(payload_of(text, f"line {number}"))
        batch.lines.append(number)
        batch.size += len(line)
        batch.body_size += item
    if batch.payloads or batch.size:
        yield batch


class RateColumn(ProgressColumn):
    """Messages published and their rate."""

    def render(self, task: Task) -> Text:
        messages = int(task.fields.get("messages", 0))
        elapsed = task.finished_time if task.finished else task.elapsed
        rate = messages / elapsed if elapsed else 0.0
        return Text(f"{messages:,} msgs  {rate:,.0f} msgs/s", style="progress.data.speed")


def _progress(total: int | None, enabled: bool) -> Progress:
    stderr = Console(stderr=True)
    columns: list[ProgressColumn | str] = [TextColumn("[bold]publishing")]
    if total is not None:
        columns += [BarColumn(), TaskProgressColumn()]
    columns += [RateColumn(), TimeElapsedColumn()]
    if total is not None:
        columns += ["eta", TimeRemainingColumn()]
    return Progress(*columns, console=stderr, disable=not enabled, transient=False)


class Publisher:
    """Sends the batches of one input with a bounded number in flight."""

    def __init__(self, client: Client, queue: str, options: dict[str, Any], prefix: str, concurrency: int):
        self.client = client
        self.queue = queue
        self.options = options
        self.prefix = prefix
        self.concurrency = concurrency
        self.published = 0
        self.failure: CliError | None = None

    def send(self, batch: Batch) -> Batch:
        options = self.options
        messages = ([{"payload": p, **options} for p in batch.payloads] if options
                    else [{"payload": p} for p in batch.payloads])
        key = f"{self.prefix}:{batch.lines[0]}"
        try:
            self.client.publish_batch(self.queue, messages=messages, idempotency_key=key)
        except BrokerError as exc:
            raise CliError(self.describe(exc, batch)) from None
        return batch

    def describe(self, exc: BrokerError, batch: Batch) -> str:
        where = f"lines {batch.lines[0]}..{batch.lines[-1]}"
        if exc.field and (found := _FIELD.match(exc.field)):
            index = int(found.group(1))
            if index < len(batch.lines):
                where = f"line {batch.lines[index]}" + (f" ({found.group(2).lstrip('.')})" if found.group(2) else "")
        return f"{where}: {exc.code}: {exc.message}"

    def run(self, batches: Iterator[Batch], progress: Progress, task: Any) -> None:
        pending: set[Future[Batch]] = set()

        def settle(done: set[Future[Batch]]) -> None:
            for future in done:
                try:
                    batch = future.result()
                except CliError as exc:
                    self.failure = self.failure or exc
                    continue
                self.published += len(batch.payloads)
                progress.update(task, advance=batch.size, messages=self.published)

        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="broker-publish") as pool:
            try:
                for batch in batches:
                    if not batch.payloads:
                        progress.update(task, advance=batch.size)
                        continue
                    while len(pending) >= self.concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        settle(done)
                    if self.failure:
                        break
                    pending.add(pool.submit(self.send, batch))
            finally:  # an unreadable line or Ctrl-C: what is in flight still lands, and is counted
                done, _ = wait(pending)
                settle(done)


def _input(args: argparse.Namespace) -> tuple[BinaryIO, int | None] | None:
    """The stream to read lines from and its size (None: stdin), or None for a single message."""
    source = args.file if args.file is not None else ("-" if args.message == "-" else None)
    if source is None:
        return None
    if args.message not in (None, "-"):
        raise usage_error("give either a JSON message or --file, not both")
    if source == "-":
        return sys.stdin.buffer, None
    try:
        stream = open(source, "rb")
    except OSError as exc:
        raise CliError(f"cannot read {source}: {exc.strerror}") from None
    return stream, os.fstat(stream.fileno()).st_size


@client_command
def cmd_publish(args: argparse.Namespace, client: Client) -> int:
    options = {k: v for k, v in (("delay_seconds", args.delay), ("priority", args.priority),
                                 ("group_id", args.group_id)) if v is not None}
    source = _input(args)
    if source is None:
        if args.message is None:
            raise usage_error("give a JSON message, --file F.jsonl, or - to read stdin (see broker publish -h)")
        published = client.publish(args.queue, payload=payload_of(args.message.encode(), "the message"),
                                   idempotency_key=args.idempotency_key, **options)
        if args.json:
            print_json(published)
        else:
            print(published.message_id)
        return 0
    stream, total = source
    queue = client.get_queue(args.queue)  # fails before reading anything when the queue is not there
    concurrency = args.concurrency or (1 if queue.type == "fifo" else DEFAULT_CONCURRENCY)
    prefix = args.idempotency_key or uuid.uuid4().hex
    publisher = Publisher(client, args.queue, options, prefix, concurrency)
    overhead = len(msgspec.json.encode({"payload": None, **options})) - 4 + 1  # the item's envelope and a comma
    show = sys.stderr.isatty() if args.progress is None else args.progress
    started = time.monotonic()
    interrupted = False
    try:
        with _progress(total, show) as progress:
            task = progress.add_task("publish", total=total, messages=0)
            try:
                publisher.run(read_batches(stream, args.batch_size, overhead), progress, task)
            except KeyboardInterrupt:
                interrupted = True
            except CliError as exc:  # an unreadable line: what came before it is published
                publisher.failure = publisher.failure or exc
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    seconds = time.monotonic() - started
    rate = publisher.published / seconds if seconds > 0 else 0.0
    if args.json:
        print_json({"queue": args.queue, "published": publisher.published, "seconds": round(seconds, 3),
                    "rate": round(rate, 1), "idempotency_key": prefix})
    else:
        print(f"broker: published {publisher.published:,} message(s) to {args.queue} in {seconds:.1f} s "
              f"({rate:,.0f} msgs/s)", file=sys.stderr)
    if publisher.failure or interrupted:
        hint = (f"; run the same command with --idempotency-key {prefix} to publish the rest "
                "(batches already stored are not stored again)")
        raise CliError(("interrupted" if interrupted else str(publisher.failure)) + hint,
                       status=130 if interrupted else 1)
    return 0


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be at least 1")
    return number


def _batch_size(value: str) -> int:
    number = _positive(value)
    if number > MAX_BATCH_MESSAGES:
        raise argparse.ArgumentTypeError(f"at most {MAX_BATCH_MESSAGES} messages per batch")
    return number


def add_parser(commands: Any, store: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``publish`` to the ``broker`` command's subparsers (``store`` is unused: it talks HTTP)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "publish", parents=[client_options()], help="publish a message, or a file of them (JSON Lines)",
        description=(
            "Publish one message (a JSON value), or every line of a file (--file F.jsonl) or of stdin (- or\n"
            "--file -), one JSON payload per line, in batches of up to 1,000 with a progress bar.\n\n"
            "examples:\n"
            "  broker publish orders '{\"order_id\": \"o_1\"}'\n"
            "  broker publish orders --file orders.jsonl\n"
            "  jq -c '.[]' export.json | broker publish orders -\n\n"
            "A failed or interrupted file can be resumed: run the same command again with the\n"
            "--idempotency-key that the failure printed; batches already stored are not stored again."
        ),
        epilog=CLIENT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("queue", metavar="QUEUE", help="the queue to publish to")
    parser.add_argument("message", metavar="JSON", nargs="?", help="the payload of one message, or - for stdin")
    parser.add_argument("-f", "--file", metavar="FILE", help="a JSON Lines file (one payload per line); - is stdin")
    parser.add_argument("--delay", type=float, metavar="SECONDS", help="deliver no sooner than this from now")
    parser.add_argument("--priority", type=int, metavar="N", help="0..9, higher first (queues with priority on)")
    parser.add_argument("--group-id", metavar="GROUP", help="the message group (FIFO queues)")
    parser.add_argument("--idempotency-key", metavar="KEY",
                        help="the key of the message, or the prefix of the batches' keys (default: random)")
    parser.add_argument("--batch-size", type=_batch_size, default=MAX_BATCH_MESSAGES, metavar="N",
                        help="messages per request (1..1000, default 1000)")
    parser.add_argument("--concurrency", type=_positive, metavar="N",
                        help=f"batches in flight (default {DEFAULT_CONCURRENCY}; 1 on a FIFO queue)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show the progress bar (default: when stderr is a terminal)")
    parser.set_defaults(handler=cmd_publish)
    return parser
