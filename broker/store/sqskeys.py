"""SQS credentials of API keys (docs/sqs.md, "Credentials").

Each API key has one SQS credential pair, derived from the key with HMAC-SHA256 under fixed labels:

    access key id  = "AKBR" + the first 16 characters of base32(HMAC(key, ACCESS_KEY_ID_LABEL))
    secret         = the first 40 characters of base64(HMAC(key, SECRET_LABEL))

SigV4 verification needs the secret itself (a signature is an HMAC under a key derived from it), so whatever
the server keeps can sign. The store therefore keeps the secret only sealed: XORed with a keystream
HMAC-SHA512(pepper, SEAL_LABEL + access key id), the pepper being a server-side secret that is never written
to Redis (``BROKER_SQS_PEPPER``, else a file ``sqs-pepper`` in the data directory, created on first use). A copy
of the Redis data alone neither gives the secret nor lets anyone sign; the record also holds the digest of its
API key, and a credential whose API key is revoked or deleted is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from redis import exceptions as redis_errors

from broker import errors
from broker.store.apikeys import digest
from broker.store.keys import AUTH_KEYS, AUTH_REVOKED, AUTH_SQS

ACCESS_KEY_ID_LABEL = b"broker sqs access key id v1"
SECRET_LABEL = b"broker sqs secret access key v1"
SEAL_LABEL = b"broker sqs seal v1\0"
PEPPER_FILE = "sqs-pepper"
log = logging.getLogger("broker.store.sqskeys")


def derive(api_key: str) -> tuple[str, str]:
    """(access key id, secret access key) of an API key."""
    raw = api_key.encode()
    key_id = base64.b32encode(hmac.new(raw, ACCESS_KEY_ID_LABEL, hashlib.sha256).digest()).decode()
    secret = base64.b64encode(hmac.new(raw, SECRET_LABEL, hashlib.sha256).digest()).decode()
    return "AKBR" + key_id[:16], secret[:40]


def _keystream(pepper: bytes, access_key_id: str, length: int) -> bytes:
    return hmac.new(pepper, SEAL_LABEL + access_key_id.encode(), hashlib.sha512).digest()[:length]


def seal(pepper: bytes, access_key_id: str, secret: str) -> str:
    data = secret.encode()
    return bytes(a ^ b for a, b in zip(data, _keystream(pepper, access_key_id, len(data)), strict=True)).hex()


def unseal(pepper: bytes, access_key_id: str, sealed: str) -> str:
    data = bytes.fromhex(sealed)
    return bytes(a ^ b for a, b in zip(data, _keystream(pepper, access_key_id, len(data)), strict=True)).decode()


def load_pepper(configured: str | None, data_dir: Path) -> bytes:
    """The pepper: ``configured`` (BROKER_SQS_PEPPER) when set, else the file in ``data_dir``, created with 32
    random bytes (mode 0600) when missing."""
    if configured:
        return configured.encode()
    path = data_dir / PEPPER_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class StoredCredential(msgspec.Struct):
    project: str
    key_digest: str
    sealed: str


async def store_credential(redis: Any, pepper: bytes, project: str, api_key: str) -> tuple[str, str]:
    """Keep the SQS credential of ``api_key`` (sealed); returns (access key id, secret)."""
    access_key_id, secret = derive(api_key)
    record = StoredCredential(project=project, key_digest=digest(api_key), sealed=seal(pepper, access_key_id, secret))
    await redis.hset(AUTH_SQS, access_key_id, msgspec.json.encode(record))
    return access_key_id, secret


@dataclass(frozen=True)
class Credential:
    project: str
    secret: str


class SqsKeyRing:
    """Resolves SQS access key ids to (project, secret): the stored credentials, and those of the keys of
    BROKER_API_KEYS (derived at start). Lookups are cached like :class:`~broker.store.apikeys.KeyRing`'s."""

    def __init__(self, redis: Any, pepper: Callable[[], bytes], env_keys: tuple[tuple[str, str], ...] = (),
                 cache_seconds: float = 0.5):
        """``pepper`` is called on the first lookup of a stored credential (so that a server no SQS client
        talks to never needs its file); a pepper that cannot be had refuses stored credentials, logged once."""
        self.redis = redis
        self._pepper_source = pepper
        self._pepper: bytes | None = None
        self._pepper_failed = False
        self.cache_seconds = cache_seconds
        self.env: dict[str, tuple[str, str, str]] = {}  # access key id -> (project, secret, key digest)
        for project, key in env_keys:
            access_key_id, secret = derive(key)
            self.env[access_key_id] = (project, secret, digest(key))
        self._cache: dict[str, tuple[Credential | None, float]] = {}

    async def credential(self, access_key_id: str) -> Credential | None:
        """The credential of ``access_key_id``, or None when unknown or its API key was revoked."""
        cached = self._cache.get(access_key_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        found = await self._lookup(access_key_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[access_key_id] = (found, time.monotonic() + self.cache_seconds)
        return found

    def pepper(self) -> bytes | None:
        if self._pepper is None and not self._pepper_failed:
            try:
                self._pepper = self._pepper_source()
            except OSError as exc:
                self._pepper_failed = True
                log.warning("SQS credentials in the store are refused: no pepper (%s); set BROKER_SQS_PEPPER", exc)
        return self._pepper

    async def _lookup(self, access_key_id: str) -> Credential | None:
        if not access_key_id.startswith("AKBR") or len(access_key_id) != 20:
            return None
        try:
            raw = await self.redis.hget(AUTH_SQS, access_key_id)
            env = self.env.get(access_key_id)
            if raw is not None:
                record = msgspec.json.decode(raw, type=StoredCredential)
                if not await self.redis.hexists(AUTH_KEYS, record.key_digest):
                    return None  # its API key was revoked
                pepper = self.pepper()
                if pepper is None:
                    return None
                return Credential(record.project, unseal(pepper, access_key_id, record.sealed))
            if env is not None:
                if await self.redis.sismember(AUTH_REVOKED, env[2]):
                    return None
                return Credential(env[0], env[1])
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, redis_errors.BusyLoadingError) as exc:
            raise errors.Unavailable(headers={"Retry-After": "1"}) from exc
        except (ValueError, UnicodeDecodeError, msgspec.DecodeError):
            return None  # a record sealed under another pepper
        return None
