"""Opaque pagination cursors and query-string parsing shared by the list routes."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

from starlette.requests import Request

from broker import errors


def encode_cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.ValidationError("invalid cursor", field="cursor") from None


#: A dead-letter cursor's score: milliseconds, as ASCII digits (``str.isdigit`` also takes "²" and other digits,
#: and ``int`` refuses more than 4,300 digits: either would be a 500).
_SCORE_RE = re.compile(r"[0-9]{1,20}")


def decode_dlq_cursor(cursor: str) -> tuple[int, str]:
    """A ``queue.dlq.list`` cursor: (dead-lettered ms, member) of the previous page's last item."""
    score, sep, member = decode_cursor(cursor).partition(":")
    if not sep or not _SCORE_RE.fullmatch(score) or "\0" not in member:
        raise errors.ValidationError("invalid cursor", field="cursor")
    return int(score), member


def page_params(request: Request, default: int = 100, maximum: int = 1000) -> tuple[str | None, int]:
    """``?cursor&limit`` of a list route, validated."""
    raw_limit = request.query_params.get("limit")
    limit = default
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            raise errors.ValidationError("limit must be an integer", field="limit") from None
        if not 1 <= limit <= maximum:
            raise errors.ValidationError(f"limit must be between 1 and {maximum}", field="limit")
    cursor = request.query_params.get("cursor") or None
    return cursor, limit


def parse_time_ms(value: str, field: str) -> int:
    """RFC 3339 (``2026-11-30T08:00:00.123Z``) to epoch ms; a time without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise errors.ValidationError("expected an RFC 3339 time like 2026-11-30T08:00:00Z", field=field) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
