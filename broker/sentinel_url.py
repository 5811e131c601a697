"""``redis+sentinel://`` URLs: the sentinels to ask, the name of the primary they monitor, and how to reach the
Redis nodes. Read by the settings (to refuse a malformed URL at start-up) and by broker/store/connection.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")
#: The query parameters of a ``redis+sentinel://`` URL (all optional).
SENTINEL_QUERY = ("sentinel_username", "sentinel_password", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile",
                  "ssl_cert_reqs")


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEMES)


@dataclass(frozen=True)
class SentinelAddress:
    """What a ``redis+sentinel://[user:password@]host:port[,host:port...]/<master-name>[/<db>][?options]`` URL
    says: the sentinels, the name of the primary they monitor, and how to reach the Redis nodes (the user and
    password of the URL are the nodes'; ``sentinel_username``/``sentinel_password`` those of the sentinels,
    when they require one; ``rediss+sentinel`` speaks TLS to both, with the ``ssl_*`` options)."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False
    ssl_options: dict[str, str] = field(default_factory=dict)


def parse_sentinel_url(url: str) -> SentinelAddress:
    """The parts of a ``redis+sentinel://`` URL; ValueError (one line, no password in it) when malformed."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, has_password, password = userinfo.partition(":")
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"sentinel address {item.strip()!r} is not host:port")
        sentinels.append((host, int(port)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError("the path must be /<master-name> or /<master-name>/<db>")
    if len(path) == 2 and not path[1].isdigit():
        raise ValueError(f"database {path[1]!r} is not a number")
    query = dict(parse_qsl(parts.query))
    unknown = sorted(set(query) - set(SENTINEL_QUERY))
    if unknown:
        raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(SENTINEL_QUERY)})")
    return SentinelAddress(
        sentinels=tuple(sentinels),
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(user) or None,
        password=unquote(password) if has_password else None,
        sentinel_username=query.get("sentinel_username"),
        sentinel_password=query.get("sentinel_password"),
        ssl=parts.scheme == "rediss+sentinel",
        ssl_options={k: v for k, v in query.items() if k.startswith("ssl_")},
    )
