"""The only module that builds Redis key names.

Layout (``P`` a validated project name, ``Q`` a validated queue name; neither can hold ``:``, ``{``,
``}`` or a glob character, so no input reaches another key):

    v1:auth:keys               hash   sha256(api key) -> {"project", "prefix", "created_at"} JSON
    v1:auth:revoked            set    sha256 of revoked keys given by BROKER_API_KEYS
    v1:auth:initial            string set when `serve` created the first key of an empty store
    v1:auth:sqs                hash   SQS access key id -> {"project", "key_digest", "sealed"} JSON (store/sqskeys.py)
    v1:projects                set    projects that have queues (for the background workers)
    v1:meta:instance           string store identity, written once (detects a store that came back empty)
    v1:ratelimits              set    projects that have a request-rate limit (for `broker limits show`)
    v1:accounts                set    projects created by the admin API (GET /v1/admin/projects)
    v1:arq:queue               zset   arq job queue of `broker worker` (arq derives its other keys from it)

    v1:{P}:queues              zset   queue names, score 0 (lexicographic listing with a stable cursor)
    v1:{P}:subs                set    names of the project's queues that have a push subscription
    v1:{P}:seq                 string message sequence of the project (ids and FIFO order)
    v1:{P}:notify              channel a queue name is published here when it gets available messages
    v1:{P}:idem:<cap>:<sha>    string idempotency record (24 h TTL)
    v1:{P}:ratelimit           hash   the project's request-rate limit and its token bucket (lua/take_tokens.lua)
    v1:{P}:account             hash   credit, limits, prices, disabled (lua/include/account.lua, store/accounts.py)
    v1:{P}:usage:<day>         hash   usage of one UTC day (days since the epoch): "<capability>:<kind>" -> count
    v1:{P}:q:Q:<part>          the structures of one queue, parts listed in QUEUE_PARTS

Every key of a project carries the hash tag ``{P}`` so each script touches one Redis Cluster slot.
Scripts that must reach another queue of the same project (a dead letter's source queue) build its
key with ``queue_key`` from ``lua/include/keys.lua``, which is generated from ``QUEUE_KEY_FORMAT``
here, so the two cannot drift.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar

VERSION = "v1"
AUTH_KEYS = f"{VERSION}:auth:keys"
AUTH_REVOKED = f"{VERSION}:auth:revoked"
AUTH_INITIAL = f"{VERSION}:auth:initial"  # set once when the first key of a store was created
AUTH_SQS = f"{VERSION}:auth:sqs"  # SQS credentials of API keys, the secret sealed (broker/store/sqskeys.py)
PROJECTS = f"{VERSION}:projects"
INSTANCE = f"{VERSION}:meta:instance"
RATE_LIMITS = f"{VERSION}:ratelimits"  # projects with a rate limit; only `broker limits` reads and writes it
ARQ_QUEUE = f"{VERSION}:arq:queue"
ACCOUNTS = f"{VERSION}:accounts"  # projects created by the admin API; only broker/store/accounts.py writes it

#: ``{tag}`` is ``v1:{P}``, ``{day}`` days since the epoch (UTC); Lua formats the same way (``usage_key``).
USAGE_KEY_FORMAT = "{tag}:usage:{day}"

#: ``{tag}`` is ``v1:{P}``; Lua receives the tag and formats the same way.
QUEUE_KEY_FORMAT = "{tag}:q:{queue}:{part}"

#: Every structure of one queue: name -> (Redis type, meaning).
QUEUE_PARTS: dict[str, tuple[str, str]] = {
    "cfg": (
        "hash",
        "configuration: type, dlq, max_retries, retention_days, visibility, priority, created_ms; "
        "retention_min_days, retention_max_days (bounds of the retention of the messages held); rkey (receipt "
        "key); band_expiry_ms (no message in a band of avail reaches its retention deadline before it, ms or "
        "'inf'; absent: unknown, lua/include/lifecycle.lua)",
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
    "pushlog": ("list", "the subscription's latest 50 delivery attempts (up to 60 kept), newest first, cmsgpack "
                "{at_ms, message_id, attempt, outcome, status, error, duration_ms} (one LPUSH per settled attempt, an "
                "LTRIM back to 50 at 61, lua/include/push.lua); deleted with the subscription"),
    "expiry": ("zset", "ids scored apart in avail (out of their band's retention order) -> retention deadline (ms)"),
    "ctr": ("hash", "message counters for /metrics: published, delivered, acked, nacked, lease_expired, "
            "dead_lettered, redriven, purged, push_success, push_failure, push_dead_lettered (one HINCRBY per "
            "counter and call; published, acked, dead_lettered and push_success share the history's and are "
            "folded in here when its minute closes, lua/include/lifecycle.lua)"),
    "hist": ("hash", "per-minute history for queue.history: '<minute>:p|a|x|s|f' published, acked, dead-lettered, "
             "push successes and failures, '<minute>+p|a|x|s' the open minute's counts not yet in 'ctr' (one HINCRBY "
             "per count and call), '<minute>:d' depth after the minute's first change, 'last' the newest (open) "
             "minute; a day of minutes kept (lua/include/lifecycle.lua)"),
    "sqs": ("hash", "SQS-only queue attributes (DelaySeconds, ReceiveMessageWaitTimeSeconds, ...) and tags "
            "('tag:' + key), written by lua/sqs_attributes.lua (docs/sqs.md)"),
}


def project_tag(project: str) -> str:
    """The hash-tagged prefix of every key of ``project``."""
    return f"{VERSION}:{{{project}}}"


def idempotency_digest(idempotency_key: str) -> str:
    """Keys are user input of any length; their SHA-256 names the record."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


#: Key-name objects kept per process (each project, each queue); cleared whole when full.
KEY_CACHE_SIZE = 10_000


class ProjectKeys:
    """Key names of one project, built once per project and process (``ProjectKeys(p)`` returns the same
    object again): the request path asks for them on every call.

    ``tag``: the prefix of every key of the project; ``queues``: zset of its queue names; ``subscriptions``:
    set of its queue names that have a push subscription (push delivery lists them); ``seq``: its message
    sequence; ``notify``: its pub/sub channel (``notify_channel`` in the generated Lua include formats it
    the same way); ``ratelimit``: hash of its request-rate limit (rate, burst) and token bucket (tokens,
    ts_ms)."""

    __slots__ = ("account", "notify", "project", "queues", "ratelimit", "seq", "subscriptions", "tag")
    _cache: ClassVar[dict[str, ProjectKeys]] = {}

    project: str
    tag: str
    queues: str
    subscriptions: str
    seq: str
    notify: str
    ratelimit: str
    account: str

    def __new__(cls, project: str) -> ProjectKeys:
        keys = cls._cache.get(project)
        if keys is None:
            keys = super().__new__(cls)
            tag = project_tag(project)
            keys.project, keys.tag = project, tag
            keys.queues, keys.subscriptions, keys.seq = f"{tag}:queues", f"{tag}:subs", f"{tag}:seq"
            keys.notify, keys.ratelimit = f"{tag}:notify", f"{tag}:ratelimit"
            keys.account = f"{tag}:account"  # credit, limits and prices (lua/include/account.lua)
            if len(cls._cache) >= KEY_CACHE_SIZE:
                cls._cache.clear()
            cls._cache[project] = keys
        return keys

    def idempotency(self, capability: str, idempotency_key: str | None) -> str:
        """The record of ``idempotency_key`` for ``capability``, or the tag when no key is given.

        Scripts take a request's idempotency record as a KEYS entry either way; an empty fingerprint
        argument tells them there is no key, and the tag (never written) keeps the call in the project's
        slot. (A publish passes the record of a message only when the message has a key.)
        """
        if idempotency_key is None:
            return self.tag
        return f"{self.tag}:idem:{capability}:{idempotency_digest(idempotency_key)}"

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.tag, name)

    def usage(self, day: int) -> str:
        """The usage hash of UTC day ``day`` (days since the epoch), written by lua/include/account.lua."""
        return USAGE_KEY_FORMAT.format(tag=self.tag, day=day)


class QueueKeys:
    """Key names of one queue: ``keys.cfg``, ``keys.inflight``... for every part of ``QUEUE_PARTS``, built
    once per queue and process like ``ProjectKeys``."""

    __slots__ = ("_parts", "name", "tag")
    _cache: ClassVar[dict[tuple[str, str], QueueKeys]] = {}

    tag: str
    name: str
    _parts: dict[str, str]

    def __new__(cls, tag: str, name: str) -> QueueKeys:
        keys = cls._cache.get((tag, name))
        if keys is None:
            keys = super().__new__(cls)
            keys.tag, keys.name = tag, name
            keys._parts = {part: QUEUE_KEY_FORMAT.format(tag=tag, queue=name, part=part) for part in QUEUE_PARTS}
            if len(cls._cache) >= KEY_CACHE_SIZE:
                cls._cache.clear()
            cls._cache[(tag, name)] = keys
        return keys

    def part(self, part: str) -> str:
        return self._parts[part]  # KeyError for an unknown part

    def all(self) -> list[str]:
        return list(self._parts.values())

    def __getattr__(self, part: str) -> str:  # keys.queue("q").inflight (the parts with a property skip this)
        try:
            return self._parts[part]
        except KeyError:
            raise AttributeError(part) from None

    @property
    def cfg(self) -> str:
        return self._parts["cfg"]


def _lua_key_expression(tag: str, queue: str, part: str) -> str:
    """``QUEUE_KEY_FORMAT`` as a Lua concatenation of the three given Lua expressions."""
    values = {"tag": tag, "queue": queue, "part": part}
    pieces = QUEUE_KEY_FORMAT.replace("{tag}", "\0tag\0").replace("{queue}", "\0queue\0").replace("{part}", "\0part\0")
    return " .. ".join(values[p] if p in values else f'"{p}"' for p in pieces.split("\0") if p)


def _lua_usage_expression() -> str:
    """``USAGE_KEY_FORMAT`` as a Lua concatenation of ``tag`` and ``day`` (formatted as an integer)."""
    pieces = USAGE_KEY_FORMAT.replace("{tag}", "\0tag\0").replace("{day}", "\0day\0").split("\0")
    values = {"tag": "tag", "day": 'string.format("%d", day)'}
    return " .. ".join(values[p] if p in values else f'"{p}"' for p in pieces if p)


def lua_keys_include() -> str:
    """Lua source of ``queue_key(tag, queue, part)`` and ``queue_keys(tag, name)``, generated from
    ``QUEUE_KEY_FORMAT`` and ``QUEUE_PARTS``.

    ``queue_keys`` builds a key name only when a script first reads it (a metatable shared by every
    queue of the call): scripts run their whole chunk on each call, and most touch 3 or 4 of the parts.
    An unknown part raises instead of naming a key nobody reads."""
    names = ", ".join(f'"{p}"' for p in QUEUE_PARTS)
    is_part = " or\n      ".join(f'part == "{p}"' for p in QUEUE_PARTS)
    return (
        "-- Generated from broker/store/keys.py (QUEUE_KEY_FORMAT, QUEUE_PARTS); do not edit.\n"
        f"local QUEUE_PARTS = {{{names}}}\n"
        "\n"
        f"local function queue_key(tag, queue, part)\n  return {_lua_key_expression('tag', 'queue', 'part')}\nend\n"
        "\n"
        "local function notify_channel(tag)\n  return tag .. \":notify\"\nend\n"
        "\n"
        "-- The project's usage hash of a UTC day (days since the epoch, an integer) and its queue-name index.\n"
        f"local function usage_key(tag, day)\n  return {_lua_usage_expression()}\nend\n"
        "\n"
        "local function queue_index_key(tag)\n  return tag .. \":queues\"\nend\n"
        "\n"
        "local function account_key(tag)\n  return tag .. \":account\"\nend\n"
        "\n"
        "-- __index of queue_keys tables, on the first read of a part: builds and keeps its key name.\n"
        "local function queue_key_index(qk, part)\n"
        f"  if not ({is_part}) then\n"
        "    error(\"unknown queue part \" .. tostring(part))\n"
        "  end\n"
        f"  local key = {_lua_key_expression('qk.tag', 'qk.name', 'part')}\n"
        "  qk[part] = key\n"
        "  return key\n"
        "end\n"
        "\n"
        "local QUEUE_KEYS_META = {__index = queue_key_index}\n"
        "\n"
        "-- The keys of queue `name`: qk.<part> is the key of that part (QUEUE_PARTS), plus qk.tag and qk.name.\n"
        "local function queue_keys(tag, name)\n"
        "  return setmetatable({tag = tag, name = name}, QUEUE_KEYS_META)\n"
        "end\n"
    )
