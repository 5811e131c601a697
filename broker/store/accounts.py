"""Project accounts: credit, limits, prices and usage (the admin API, ``broker admin``, ``GET /v1/account``).

The account of a project is its hash ``v1:{P}:account`` (fields ``credit``, ``disabled``, ``usage_days``,
``max_queues``, ``max_messages``, ``max_payload_bytes``, ``price:<capability>``, ``created_ms``). The charged
scripts read and debit it in the same atomic step as their operation (``lua/include/account.lua``); this
module only writes the settings and reads them back. The request-rate limit (``requests_per_second``) is the
existing token bucket of :mod:`broker.store.ratelimit`.

Usage is one hash per project and UTC day (``v1:{P}:usage:<day>``), fields ``<capability>:<kind>``, kinds
``calls``, ``published``, ``delivered``, ``pushed`` and ``bytes``, written by the scripts with HINCRBY (exact
under any concurrency) and expiring ``usage_days`` days after the day ends.
"""

from __future__ import annotations

import bisect
import datetime
from typing import Any

import msgspec

from broker import errors
from broker.schemas import rfc3339
from broker.store.failures import answered
from broker.store.keys import ACCOUNTS, ProjectKeys
from broker.store.ratelimit import clear_limit, list_limits, set_limit
from broker.store.scripts import Scripts

DAY_MS = 86_400_000
#: Days a day's usage is kept when the account does not say (USAGE_DEFAULT_DAYS in lua/include/account.lua).
USAGE_DEFAULT_DAYS = 90
#: The most days one usage read covers.
MAX_USAGE_DAYS = 366
USAGE_KINDS = ("calls", "published", "delivered", "pushed", "bytes")
#: The capabilities whose calls are charged (each script's account_open), with their default price (1 per call;
#: publish_batch 1 per message).
CHARGED_CAPABILITIES = (
    "queue.create", "queue.get", "queue.list", "queue.update", "queue.delete", "queue.publish",
    "queue.publish_batch", "queue.consume", "queue.ack", "queue.ack_batch",
    "queue.nack", "queue.extend", "queue.stats", "queue.purge", "queue.dlq.list", "queue.dlq.redrive",
    "queue.push_subscribe",
)
#: Limits kept in the account hash (the rate limit is the token bucket's).
COUNT_LIMITS = ("max_queues", "max_messages", "max_payload_bytes")
MAX_LIMIT = 10**15


class Limits(msgspec.Struct, kw_only=True):
    """A project's limits; ``None`` is no limit."""

    max_queues: int | None = None
    max_messages: int | None = None
    max_payload_bytes: int | None = None
    requests_per_second: float | None = None
    burst: int | None = None


class Account(msgspec.Struct, kw_only=True):
    """What the admin API shows of a project (and ``GET /v1/account`` of its own)."""

    project: str
    credit: int | None  # None: unlimited (no credit configured)
    disabled: bool
    limits: Limits
    prices: dict[str, int]
    usage_retention_days: int
    created_at: str | None


class UsageRow(msgspec.Struct, kw_only=True):
    """One day and capability of a project's usage."""

    day: str  # YYYY-MM-DD, UTC
    capability: str
    calls: int = 0
    published: int = 0
    delivered: int = 0
    pushed: int = 0
    bytes: int = 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def day_of(ms: int) -> int:
    """Days since the epoch (UTC) of epoch ms."""
    return ms // DAY_MS


def day_text(day: int) -> str:
    return (datetime.date(1970, 1, 1) + datetime.timedelta(days=day)).isoformat()


def parse_day(text: str, field: str) -> int:
    """``YYYY-MM-DD`` as days since the epoch, or a 400 naming ``field``."""
    try:
        date = datetime.date.fromisoformat(text)
    except ValueError:
        raise errors.ValidationError(f"{field} must be a date YYYY-MM-DD", field=field) from None
    return (date - datetime.date(1970, 1, 1)).days


class _Plan(msgspec.Struct):
    """The writes of a checked change: account fields to set and to delete, and the rate limit ((rate, burst),
    (None, 0) to clear it, None to leave it)."""

    sets: dict[str, Any]
    removed: list[str]
    rate: tuple[float | None, int] | None = None


def _whole(value: Any, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


def _plan(changes: dict[str, Any]) -> _Plan:
    """Check a change of an account (a 400 naming the field) and return its writes."""
    plan = _Plan(sets={}, removed=[])
    given = changes.get("limits")
    if given is not None:
        if not isinstance(given, dict):
            raise errors.ValidationError("limits must be an object", field="limits")
        try:
            limits = msgspec.convert(given, Limits)
        except msgspec.ValidationError as exc:
            raise errors.ValidationError(f"limits: {exc}", field="limits") from None
        for name in COUNT_LIMITS:
            if name in given:
                check_limit(name, given[name])
                if given[name] is None:
                    plan.removed.append(name)
                else:
                    plan.sets[name] = given[name]
        if "requests_per_second" in given or "burst" in given:
            rate = limits.requests_per_second
            if rate is None:
                plan.rate = (None, 0)
            else:
                if not 0 < rate <= 1e9:
                    raise errors.ValidationError("requests_per_second must be > 0 and <= 1e9",
                                                 field="limits.requests_per_second")
                burst = limits.burst if limits.burst is not None else max(1, int(rate))
                if not 1 <= burst <= 1_000_000_000:
                    raise errors.ValidationError("burst must be 1..1000000000", field="limits.burst")
                plan.rate = (rate, burst)
    if "disabled" in changes:
        plan.sets["disabled"] = "1" if changes["disabled"] else "0"
    if "usage_retention_days" in changes:
        if not _whole(changes["usage_retention_days"], 1, 3660):
            raise errors.ValidationError("usage_retention_days must be 1..3660", field="usage_retention_days")
        plan.sets["usage_days"] = changes["usage_retention_days"]
    for capability, price in (changes.get("prices") or {}).items():
        if capability not in CHARGED_CAPABILITIES:
            raise errors.ValidationError(f"unknown capability {capability!r}; charged ones: "
                                         + ", ".join(CHARGED_CAPABILITIES), field=f"prices.{capability}")
        if price is None:
            plan.removed.append(f"price:{capability}")
        elif not _whole(price, 0, MAX_LIMIT):
            raise errors.ValidationError(f"a price must be a whole number 0..{MAX_LIMIT}", field=f"prices.{capability}")
        else:
            plan.sets[f"price:{capability}"] = price
    if "credit" in changes:
        credit = changes["credit"]
        if credit is None:
            plan.removed.append("credit")
        elif not _whole(credit, -MAX_LIMIT, MAX_LIMIT):
            raise errors.ValidationError(f"credit must be a whole number of at most {MAX_LIMIT} or null",
                                         field="credit")
        else:
            plan.sets["credit"] = credit
    return plan


def check_limit(name: str, value: Any) -> None:
    """A count limit must be a whole number 0..10^15 (or None: no limit)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_LIMIT):
        raise errors.ValidationError(f"{name} must be a whole number 0..{MAX_LIMIT} or null", field=f"limits.{name}")


async def open_account(redis: Any, project: str, now_ms: int) -> bool:
    """Make sure ``project`` has an account (unlimited, metered); True when this call created it. Every project
    gets one with its first key (:func:`broker.store.apikeys.create_key`, and at start-up for the keys of
    ``BROKER_API_KEYS`` and of older stores). The project joins the registry first (another Cluster slot), so
    the registry covers every account."""
    await answered(redis.sadd(ACCOUNTS, project))
    return bool(await answered(redis.hsetnx(ProjectKeys(project).account, "created_ms", now_ms)))


class Accounts:
    """Reads and writes accounts of one Redis (the scripts do the charging)."""

    def __init__(self, redis: Any, scripts: Scripts):
        self.redis = redis
        self.scripts = scripts

    async def exists(self, project: str) -> bool:
        return bool(await answered(self.redis.exists(ProjectKeys(project).account)))

    async def create(self, project: str, limits: dict[str, Any] | None, now_ms: int) -> Account:
        """A new account (409 when it exists), with ``limits`` (checked first: a refused create writes nothing)."""
        plan = _plan({"limits": limits} if limits is not None else {})
        if not await open_account(self.redis, project, now_ms):
            raise errors.Conflict(f"project {project!r} already exists")
        await self._apply(project, plan, now_ms)
        return await self.get(project)

    async def projects(self, after: str | None = None, limit: int | None = None) -> tuple[list[str], bool]:
        """The projects' names in order, those after ``after``, at most ``limit``; and whether more follow."""
        names = sorted(_text(m) for m in await answered(self.redis.smembers(ACCOUNTS)))
        if after is not None:
            names = names[bisect.bisect_right(names, after):]
        if limit is None or len(names) <= limit:
            return names, False
        return names[:limit], True

    async def get(self, project: str) -> Account:
        """The account, or 404 when the project has none."""
        pk = ProjectKeys(project)
        raw = {_text(k): _text(v) for k, v in (await answered(self.redis.hgetall(pk.account))).items()}
        if not raw:
            raise errors.NotFound(f"project {project!r} has no account (create it with POST /v1/admin/projects)")
        limits = Limits(**{name: int(raw[name]) for name in COUNT_LIMITS if name in raw})
        for _, limit, _tokens in await list_limits(self.redis, [project]):
            limits.requests_per_second, limits.burst = limit.rate, limit.burst
        created = int(raw["created_ms"]) if "created_ms" in raw else None
        return Account(
            project=project,
            credit=int(raw["credit"]) if "credit" in raw else None,
            disabled=raw.get("disabled") == "1",
            limits=limits,
            prices={k[len("price:"):]: int(v) for k, v in sorted(raw.items()) if k.startswith("price:")},
            usage_retention_days=int(raw.get("usage_days", USAGE_DEFAULT_DAYS)),
            created_at=None if created is None else rfc3339(created),
        )

    async def update(self, project: str, changes: dict[str, Any], now_ms: int) -> Account:
        """PATCH: ``limits`` (only the named ones change), ``disabled``, ``prices`` (null: back to 1),
        ``usage_retention_days``, ``credit`` (null: unlimited; a number: set to it). Everything is checked
        before anything is written."""
        await self.get(project)  # 404 first
        await self._apply(project, _plan(changes), now_ms)
        return await self.get(project)

    async def _apply(self, project: str, plan: _Plan, now_ms: int) -> None:
        pk = ProjectKeys(project)
        if plan.rate is not None:
            rate, burst = plan.rate
            if rate is None:
                await clear_limit(self.scripts, self.redis, project, now_ms)
            else:
                await set_limit(self.scripts, self.redis, project, rate, burst, now_ms)
        if plan.sets or plan.removed:
            async with self.redis.pipeline(transaction=True) as pipe:
                if plan.sets:
                    pipe.hset(pk.account, mapping=plan.sets)
                if plan.removed:
                    pipe.hdel(pk.account, *plan.removed)
                await answered(pipe.execute())

    async def add_credit(self, project: str, amount: int) -> int:
        """Add ``amount`` (negative to correct) to the credit; the first top-up starts from 0. Returns the
        balance (one HINCRBY: exact under concurrent top-ups and debits)."""
        if isinstance(amount, bool) or not isinstance(amount, int) or abs(amount) > MAX_LIMIT:
            raise errors.ValidationError(f"amount must be a whole number of at most {MAX_LIMIT}", field="amount")
        await self.get(project)
        return int(await answered(self.redis.hincrby(ProjectKeys(project).account, "credit", amount)))

    async def usage(self, project: str, from_day: int, to_day: int) -> list[UsageRow]:
        """Usage per day and capability, days ``from_day`` .. ``to_day`` (inclusive), days without usage left out."""
        if to_day < from_day:
            raise errors.ValidationError("to must not be before from", field="to")
        if to_day - from_day + 1 > MAX_USAGE_DAYS:
            raise errors.ValidationError(f"at most {MAX_USAGE_DAYS} days at a time", field="from")
        pk = ProjectKeys(project)
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in range(from_day, to_day + 1):
                pipe.hgetall(pk.usage(day))
            days = await answered(pipe.execute())
        rows: list[UsageRow] = []
        for day, counts in zip(range(from_day, to_day + 1), days, strict=True):
            by_capability: dict[str, UsageRow] = {}
            for field, value in counts.items():
                capability, _, kind = _text(field).rpartition(":")
                if kind not in USAGE_KINDS:
                    continue
                row = by_capability.setdefault(capability, UsageRow(day=day_text(day), capability=capability))
                setattr(row, kind, int(value))
            rows += [by_capability[c] for c in sorted(by_capability)]
        return rows
