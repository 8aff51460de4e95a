"""HTTP routes the app serves beside its pages: the SnapTrade webhook receiver, a health check and the
exchange of a sign-in's one-time code for the HttpOnly re-login cookie (core.accounts.session_cookie).

Starlette only (no streamlit here); `app.py` hands `routes` to `st.App`. Handlers stay async for
the body read and push verification and database work to a thread, so the event loop never blocks.
"""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

import anyio
from sqlmodel import Session
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.accounts import session_cookie
from core.logs import log_context
from core.messages import describe_error
from core.redaction import remember_secret
from core.settings import get_settings
from core.snaptrade.client import NotConfiguredError, resolve_endpoint
from core.storage.db import get_engine
from core.web import webhooks
from core.web.health import health

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class BodyTooLarge(Exception):
    pass


async def read_body_limited(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing more than `max_bytes` by the declared length and by what arrives."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise webhooks.WebhookRejected(400, "invalid Content-Length")
        if int(declared) > max_bytes:
            raise BodyTooLarge()
    chunks, size = [], 0
    # Counted while streaming: a chunked body has no Content-Length to trust.
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _receive(body: bytes, signature: str | None) -> webhooks.WebhookResult:
    """Runs in a worker thread: the endpoint (key) is resolved per delivery, since the sandbox sets it at runtime."""
    settings = get_settings()
    endpoint = resolve_endpoint(settings)
    remember_secret(settings.snaptrade_webhook_legacy_secret)  # so redact() scrubs it if it ever shows up
    with Session(get_engine(), expire_on_commit=False) as session:
        return webhooks.receive_delivery(
            session,
            body,
            signature,
            client_id=endpoint["client_id"],
            consumer_key=endpoint["consumer_key"],
            legacy_secret=settings.snaptrade_webhook_legacy_secret,
            max_age_seconds=settings.webhook_max_age_seconds,
        )


def _error(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "rejected", "error": reason, **extra}, status_code=status)


def request_id(request: Request) -> str:
    """The caller's X-Request-ID when it looks like one, else a new id: every log event of the request carries it."""
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]


async def snaptrade_webhook(request: Request) -> JSONResponse:
    """POST /api/webhooks/snaptrade: verify, record once, queue; answers without waiting for any sync."""
    with log_context(request_id=request_id(request)):  # contextvars follow into the worker thread
        return await _receive_webhook(request)


async def _receive_webhook(request: Request) -> JSONResponse:
    try:
        body = await read_body_limited(request, get_settings().webhook_max_bytes)
        result = await anyio.to_thread.run_sync(functools.partial(_receive, body, request.headers.get("signature")))
    except BodyTooLarge:
        webhooks.log_delivery(None, None, "rejected-413", "body too large")
        return _error(413, "body too large")
    except webhooks.WebhookRejected as exc:
        webhooks.log_delivery(exc.event_type, exc.webhook_id, f"rejected-{exc.status}", exc.reason)
        return _error(exc.status, exc.reason)
    except NotConfiguredError:
        # SnapTrade retries a 503 later; by then the sandbox or the credentials may be in place.
        webhooks.log_delivery(None, None, "rejected-503", "SnapTrade endpoint not configured")
        return _error(503, "webhook verification is not configured yet")
    except Exception as exc:  # noqa: BLE001 - answer 500 (SnapTrade retries); a row left 'received' is redone then
        # Still one line, no traceback: a driver's message can quote statement parameters.
        webhooks.log_delivery(None, None, "error-500", describe_error(exc))
        return _error(500, "internal error")
    webhooks.log_delivery(result.event_type, result.webhook_id, result.outcome, result.event_status or "", result)
    return JSONResponse({"status": result.outcome, "webhookId": result.webhook_id, "eventStatus": result.event_status})


async def webhook_wrong_method(request: Request) -> JSONResponse:
    """Any other method on the webhook address: a JSON 405 naming POST, not Streamlit's blank page."""
    return JSONResponse({"status": "rejected", "error": "use POST to deliver a webhook"}, status_code=405,
                        headers={"Allow": "POST"})  # fmt: skip


async def health_endpoint(request: Request) -> JSONResponse:
    """GET /api/health: 200 ok/degraded, 503 when the database is unreachable."""

    def check() -> tuple[dict, int]:
        try:
            engine = get_engine()
        except Exception as exc:  # noqa: BLE001 - a bad URL is "database down", not a traceback
            return {"status": "down", "database": {"reachable": False, "error": type(exc).__name__}}, 503
        return health(engine)

    body, status = await anyio.to_thread.run_sync(check)
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


routes = [
    Route("/api/webhooks/snaptrade", snaptrade_webhook, methods=["POST"]),
    Route("/api/webhooks/snaptrade", webhook_wrong_method, methods=["GET", "PUT", "PATCH", "DELETE"]),
    Route("/api/health", health_endpoint, methods=["GET"]),
    Route(session_cookie.ROUTE_PATH, session_cookie.exchange, methods=["POST"]),
]
