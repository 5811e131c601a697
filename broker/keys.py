"""The only module that builds Redis key names.

Layout (``P`` a validated project name, ``Q`` a validated queue name; neither can hold ``:``, ``{``,
``}`` or a glob character, so no input reaches another key):

    v1:auth:keys               hash   sha256(api key) -> {"project", "prefix", "created_at"} JSON
    v1:auth:revoked            set    sha256 of revoked keys given by BROKER_API_KEYS
    v1:auth:initial            string set when `serve` created the first key of an empty store
    v1:projects                set    projects that have queues (for the background workers)
    v1:meta:instance           string store identity, written once (detects a store that came back empty)
    v1:ratelimits              set    projects that have a request-rate limit (for `broker limits show`)
    v1:arq:queue               zset   arq job queue of `broker worker` (arq derives its other keys from it)

    v1:{P}:queues              zset   queue names, score 0 (lexicographic listing with a stable cursor)
    v1:{P}:subs                set    names of the project's queues that have a push subscription
    v1:{P}:seq                 string message sequence of the project (ids and FIFO order)
    v1:{P}:notify              channel a queue name is published here when it gets available messages
    v1:{P}:idem:<cap>:<sha>    string idempotency record (24 h TTL)
    v1:{P}:ratelimit           hash   the project's request-rate limit and its token bucket (lua/take_tokens.lua)
    v1:{P}:q:Q:<part>          the structures of one queue, parts listed in QUEUE_PARTS

Every key of a project carries the hash tag ``{P}`` so each script touches one Redis Cluster slot.
Scripts that must reach another queue of the same project (a dead letter's source queue) build its
key with ``queue_key`` from ``lua/include/keys.lua``, which is generated from ``QUEUE_KEY_FORMAT``
here, so the two cannot drift.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

VERSION = "v1"
AUTH_KEYS = f"{VERSION}:auth:keys"
AUTH_REVOKED = f"{VERSION}:auth:revoked"
AUTH_INITIAL = f"{VERSION}:auth:initial"  # set once when the first key of a store was created
PROJECTS = f"{VERSION}:projects"
INSTANCE = f"{VERSION}:meta:instance"
RATE_LIMITS = f"{VERSION}:ratelimits"  # projects with a rate limit; only `broker limits` reads and writes it
ARQ_QUEUE = f"{VERSION}:arq:queue"

#: ``{tag}`` is ``v1:{P}``; Lua receives the tag and formats the same way.
QUEUE_KEY_FORMAT = "{tag}:q:{queue}:{part}"

#: Every structure of one queue: name -> (Redis type, meaning).
QUEUE_PARTS: dict[str, tuple[str, str]] = {
    "cfg": (
        "hash",
        "configuration: type, dlq, max_retries, retention_days, visibility, priority, created_ms; "
        "retention_min_days, retention_max_days (bounds of the retention of the messages held)",
    ),
    "avail": ("zset", "available ids; standard: (9 - priority) * 2^42 + sequence, fifo: sequence; each band in "
              "retention order too, ids that do not fit scored 2^46 lower (and in expiry)"),
    "delayed": ("zset", "ids not yet due -> due time, or retention deadline when earlier (ms)"),
    "inflight": ("zset", "leased ids -> lease deadline, or retention deadline when earlier (ms)"),
    "dead": ("zset", "dead letters kept in this queue's own area -> retention deadline (ms)"),
    "dlqidx": ("zset", "every dead letter of this queue wherever it sits, member 'where\\0id' -> dead-lettered time"),
    "foreign": ("set", "ids held here that are dead letters of another queue (to unindex them on purge)"),
    "msgs": ("hash", "id -> cmsgpack [state fields] followed by the payload; layout in lua/include/message.lua"),
    "groups": ("zset", "fifo: ready groups -> time their head message became available (ms)"),
    "gq": ("zset", "fifo: waiting messages of all groups, member group\\0<seq><enqueued ms> (hex) -> 0, lexicographic"),
    "gbusy": ("hash", "fifo: group -> messages of the group in flight or awaiting retry"),
    "refs": ("set", "names of queues (and 'sub:' + name for subscriptions) using this queue as DLQ"),
    "sub": ("hash", "push subscription of this queue"),
    "subst": ("hash", "push subscription delivery state"),
    "expiry": ("zset", "ids scored apart in avail (out of their band's retention order) -> retention deadline (ms)"),
}


def project_tag(project: str) -> str:
    """The hash-tagged prefix of every key of ``project``."""
    return f"{VERSION}:{{{project}}}"


def idempotency_digest(idempotency_key: str) -> str:
    """Keys are user input of any length; their SHA-256 names the record."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ProjectKeys:
    """Key names of one project."""

    project: str

    @property
    def tag(self) -> str:
        return project_tag(self.project)

    @property
    def queues(self) -> str:
        return f"{self.tag}:queues"

    @property
    def subscriptions(self) -> str:
        """Set of the project's queue names that have a push subscription (push delivery lists them)."""
        return f"{self.tag}:subs"

    @property
    def seq(self) -> str:
        return f"{self.tag}:seq"

    @property
    def notify(self) -> str:
        """Pub/sub channel; ``notify_channel`` in the generated Lua include formats it the same way."""
        return f"{self.tag}:notify"

    @property
    def ratelimit(self) -> str:
        """Hash: the project's request-rate limit (rate, burst) and token bucket (tokens, ts_ms)."""
        return f"{self.tag}:ratelimit"

    def idempotency(self, capability: str, idempotency_key: str | None) -> str:
        """The record of ``idempotency_key`` for ``capability``, or the tag when no key is given.

        Scripts take the idempotency record as a KEYS entry either way; an empty ``idem_fp`` argument
        tells them there is no key, and the tag (never written) keeps the call in the project's slot.
        """
        if idempotency_key is None:
            return self.tag
        return f"{self.tag}:idem:{capability}:{idempotency_digest(idempotency_key)}"

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.tag, name)


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """Key names of one queue."""

    tag: str
    name: str

    def part(self, part: str) -> str:
        if part not in QUEUE_PARTS:
            raise KeyError(part)
        return QUEUE_KEY_FORMAT.format(tag=self.tag, queue=self.name, part=part)

    def all(self) -> list[str]:
        return [self.part(p) for p in QUEUE_PARTS]

    def __getattr__(self, part: str) -> str:  # keys.queue("q").inflight
        if part in QUEUE_PARTS:
            return QUEUE_KEY_FORMAT.format(tag=self.tag, queue=self.name, part=part)
        raise AttributeError(part)


def lua_keys_include() -> str:
    """Lua source of ``queue_key(tag, queue, part)``, generated from ``QUEUE_KEY_FORMAT``."""
    pieces = QUEUE_KEY_FORMAT.replace("{tag}", "\0tag\0").replace("{queue}", "\0queue\0").replace("{part}", "\0part\0")
    parts = [p for p in pieces.split("\0") if p]
    expr = " .. ".join(p if p in ("tag", "queue", "part") else repr(p).replace("'", '"') for p in parts)
    names = ", ".join(f'"{p}"' for p in QUEUE_PARTS)
    return (
        "-- Generated from broker/keys.py (QUEUE_KEY_FORMAT, QUEUE_PARTS); do not edit.\n"
        f"local QUEUE_PARTS = {{{names}}}\n"
        f"local function queue_key(tag, queue, part)\n  return {expr}\nend\n"
        "-- The keys of queue `name`: a table part -> key name, plus .tag and .name.\n"
        "local function notify_channel(tag)\n  return tag .. \":notify\"\nend\n"
        "local function queue_keys(tag, name)\n"
        "  local qk = {tag = tag, name = name}\n"
        "  for _, part in ipairs(QUEUE_PARTS) do qk[part] = queue_key(tag, name, part) end\n"
        "  return qk\nend\n"
    )
