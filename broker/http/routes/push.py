"""queue.push_subscribe, and the extensions to read and remove a queue's push subscription."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response

from broker import errors, schemas
from broker.http.context import ctx_of
from broker.http.edge import JSON, path_queue
from broker.http.operation import ApiRoute, Operation, queue_links
from broker.push.ssrf import AddressGuard, RefusedUrl, check_url
from broker.push.webhooks import InvalidSecret, secret_key
from broker.schemas import (
    DEFAULT_PUSH_CONCURRENCY,
    DEFAULT_PUSH_VISIBILITY_SECONDS,
    PushSubscribeRequest,
    PushUnsubscribed,
    QueueOnlyRequest,
)
from broker.store.queues import fingerprint
from broker.store.subscriptions import SubscribeArgs, SubscriptionStore


def _target_url(req: PushSubscribeRequest) -> str:
    if req.url is not None and req.forward_to is not None:
        raise errors.ValidationError("give the target as url or as forward_to, not both", field="url")
    url = req.url if req.url is not None else req.forward_to
    if url is None:
        raise errors.ValidationError("url (or its alias forward_to) is required", field="url")
    return url


async def push_subscribe(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, PushSubscribeRequest)
    name = path_queue(request, req.queue)
    url = _target_url(req)
    if req.dead_letter_queue == name:
        raise errors.ValidationError("a queue cannot be its own dead-letter queue", field="dead_letter_queue")
    if req.secret is not None:
        try:
            secret_key(req.secret)
        except InvalidSecret as exc:
            raise errors.ValidationError(str(exc), field="secret") from None
    try:
        await check_url(url, AddressGuard(ctx.settings.push_allow_private))
    except RefusedUrl as exc:
        raise errors.ValidationError(str(exc), field="url") from None
    args = SubscribeArgs(
        url=url,
        secret=req.secret,
        max_retries=req.max_retries,
        visibility_s=req.visibility_timeout or DEFAULT_PUSH_VISIBILITY_SECONDS,
        dead_letter_queue=req.dead_letter_queue,
        max_concurrency=req.max_concurrency or DEFAULT_PUSH_CONCURRENCY,
    )
    fp = fingerprint(f"queue.push_subscribe/{name}", req) if req.idempotency_key else ""
    subscription = await SubscriptionStore(ctx.store).subscribe(
        project, name, args, new_id=f"sub_{uuid.uuid4().hex}", idempotency_key=req.idempotency_key, fp=fp
    )
    return JSON(subscription)


async def get_subscription(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, QueueOnlyRequest)
    return JSON(await SubscriptionStore(ctx.store).get(project, path_queue(request, req.queue)))


async def delete_subscription(request: Request) -> Response:
    ctx = ctx_of(request)
    project = await ctx.project(request)
    req = await ctx.body(request, QueueOnlyRequest)
    name = path_queue(request, req.queue)
    subscription_id = await SubscriptionStore(ctx.store).unsubscribe(project, name)
    return JSON(PushUnsubscribed(subscription_id=subscription_id, queue=name, deleted=True))


routes = [
    ApiRoute("/v1/queue/push_subscribe/{queue}", push_subscribe, methods=["POST"], operation=Operation(
        "queue.push_subscribe", "Deliver the queue's messages to a webhook (replaces its subscription)", tag="push",
        request=PushSubscribeRequest, response=schemas.PushSubscription,
        errors=(errors.QueueNotFound, errors.IdempotencyKeyReused, errors.InsufficientCredit),
        description="`url` (alias `forward_to`) must be https and resolve only to globally routable addresses, "
        "else 400 with `field: \"url\"`.",
        links=queue_links("$response.body#/queue", "queue.push_subscription.get", "queue.push_subscription.delete"),
    )),
    ApiRoute("/v1/queue/push_subscription/{queue}", get_subscription, methods=["GET"], operation=Operation(
        "queue.push_subscription.get", "The queue's push subscription, without its secret, and its delivery state",
        extension=True, request=QueueOnlyRequest, response=schemas.PushSubscriptionInfo,
        errors=(errors.QueueNotFound, errors.SubscriptionNotFound),
        description="`recent_attempts`: its latest 50 settled delivery attempts, newest first (time, message, "
        "attempt number, outcome, HTTP status or error, duration), recorded by the scripts that settle them.",
    )),
    ApiRoute("/v1/queue/push_subscription/{queue}", delete_subscription, methods=["DELETE"], operation=Operation(
        "queue.push_subscription.delete", "Remove the queue's push subscription", extension=True,
        request=QueueOnlyRequest, response=PushUnsubscribed,
        errors=(errors.QueueNotFound, errors.SubscriptionNotFound),
    )),
]
