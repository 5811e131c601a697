"""What the sync and the async client share: their httpx settings, reading an answer (a Struct, or the
contract's error), naming a broken connection, the environment variables, and the descriptors that turn
the call builders of :mod:`broker.client.calls` into methods with the builders' own signatures."""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, ParamSpec, Protocol, TypeVar

import httpx
import msgspec

from broker.client.calls import Call
from broker.client.errors import BrokerError, ConnectionFailed, error_from_response

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

#: The environment variables ``from_env`` reads (the ``broker`` command reads the same).
URL_VARIABLE = "BROKER_URL"
KEY_VARIABLE = "BROKER_KEY"
DEFAULT_TIMEOUT = 10.0

try:
    _VERSION = version("broker-queue")
except PackageNotFoundError:  # running from a source tree
    _VERSION = "0"
USER_AGENT = f"broker-client/{_VERSION} httpx/{httpx.__version__}"

#: Failures before the request left: the server cannot have acted on it.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def http_options(base_url: str, key: str, timeout: float) -> dict[str, Any]:
    """The keyword arguments of ``httpx.Client`` / ``httpx.AsyncClient`` for a client of ``base_url``."""
    if not base_url:
        raise ValueError("the server's base URL is empty")
    if not key:
        raise ValueError("the API key is empty")
    return {
        "base_url": base_url,
        "headers": {"Authorization": f"Bearer {key}", "User-Agent": USER_AGENT, "Accept": "application/json"},
        "timeout": httpx.Timeout(timeout),
        "follow_redirects": False,
    }


def env_settings(url: str | None = None, key: str | None = None) -> tuple[str, str]:
    """``url`` and ``key``, else ``BROKER_URL`` and ``BROKER_KEY``; a ValueError names what is missing."""
    url = url or os.environ.get(URL_VARIABLE, "")
    key = key or os.environ.get(KEY_VARIABLE, "")
    missing = [name for name, value in ((URL_VARIABLE, url), (KEY_VARIABLE, key)) if not value]
    if missing:
        raise ValueError(f"set {' and '.join(missing)} (the server's URL and an API key)")
    return url, key


def request_options(call: Call[Any], timeout: float) -> dict[str, Any]:
    """The arguments of ``httpx.Client.request`` for ``call``."""
    options: dict[str, Any] = {"params": call.params}
    if call.body is not None:
        options["content"] = call.body
        options["headers"] = {"Content-Type": "application/json"}
    if call.wait_seconds:
        options["timeout"] = httpx.Timeout(timeout, read=timeout + call.wait_seconds)
    return options


def answer(call: Call[T], response: httpx.Response) -> T:
    """The decoded answer of a 2xx response; the contract's error otherwise."""
    if 200 <= response.status_code < 300:
        try:
            return call.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BrokerError(f"the answer to {call.capability} is not what the contract says: {exc}",
                              code="UNEXPECTED_ANSWER", status=response.status_code,
                              request_id=response.headers.get("x-request-id")) from None
    raise error_from_response(response.status_code, response.content, response.headers)


def connection_failed(exc: httpx.TransportError, call: Call[Any], base_url: object) -> ConnectionFailed:
    sent = not isinstance(exc, _NOT_SENT)
    what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    where = "lost the connection to" if sent else "cannot connect to"
    return ConnectionFailed(f"{call.capability}: {where} {base_url} ({what})", sent=sent)


class Sender(Protocol[T_co]):
    """What the descriptors need of a client."""

    def send(self, call: Call[Any]) -> Any: ...


class SyncOperation(Generic[P, T]):
    """A method of :class:`~broker.client.Client`: builds the call with the builder's arguments and sends it."""

    def __init__(self, build: Callable[P, Call[T]]):
        self.build = build
        self.__doc__ = build.__doc__
        self.__wrapped__ = build

    def __set_name__(self, owner: type, name: str) -> None:
        self.__qualname__ = f"{owner.__qualname__}.{name}"

    def __get__(self, client: Sender[Any] | None, owner: type | None = None) -> Callable[P, T]:
        if client is None:
            return self  # type: ignore[return-value]
        build = self.build

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> T:
            result: T = client.send(build(*args, **kwargs))
            return result

        return method

    def __call__(self, client: Sender[Any], *args: P.args, **kwargs: P.kwargs) -> T:
        """``Client.method(client, ...)``: the unbound form, as for any method."""
        result: T = client.send(self.build(*args, **kwargs))
        return result


class AsyncOperation(Generic[P, T]):
    """A method of :class:`~broker.client.AsyncClient`: the same, awaitable."""

    def __init__(self, build: Callable[P, Call[T]]):
        self.build = build
        self.__doc__ = build.__doc__
        self.__wrapped__ = build

    def __set_name__(self, owner: type, name: str) -> None:
        self.__qualname__ = f"{owner.__qualname__}.{name}"

    def __get__(self, client: Sender[Any] | None, owner: type | None = None) -> Callable[P, Awaitable[T]]:
        if client is None:
            return self  # type: ignore[return-value]
        build = self.build

        @functools.wraps(build)
        def method(*args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
            result: Awaitable[T] = client.send(build(*args, **kwargs))
            return result

        return method

    def __call__(self, client: Sender[Any], *args: P.args, **kwargs: P.kwargs) -> Awaitable[T]:
        """``AsyncClient.method(client, ...)``: the unbound form, as for any method."""
        result: Awaitable[T] = client.send(self.build(*args, **kwargs))
        return result
