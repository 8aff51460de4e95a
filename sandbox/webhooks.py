"""SnapTrade webhooks: payloads per REFERENCE §11, signed with the consumer key, delivered from a background thread.

A failed delivery (non-2xx or connection error) is retried after each of `retry_delays` (at most three retries).
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.signing import webhook_signature


class WebhookSender:
    def __init__(self, client_id: str, consumer_key: str, url: str | None, retry_delays: tuple[float, ...]) -> None:
        self.client_id = client_id
        self.consumer_key = consumer_key
        self.url = url
        self.retry_delays = tuple(retry_delays)[:3]
        self._deliveries: list[dict[str, Any]] = []
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = 0
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def payload(self, event_type: str, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "webhookId": str(uuid.uuid4()),
            "clientId": self.client_id,
            "eventTimestamp": datetime.now(UTC).isoformat(),  # e.g. 2024-05-31T11:16:54.658533+00:00
            "userId": user_id,
            "eventType": event_type,
            "webhookSecret": "sandbox-webhook-secret",  # deprecated field SnapTrade still sends
            **fields,
        }

    def send(self, event_type: str, user_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        payload = self.payload(event_type, user_id, fields)
        if not self.url:
            return payload
        delivery = {
            "payload": payload,
            "url": self.url,
            "signature": webhook_signature(self.consumer_key, payload),
            "attempts": 0,
            "delivered": False,
            "last_status": None,
            "last_error": None,
        }
        with self._cond:
            self._deliveries.append(delivery)
            heapq.heappush(self._queue, (time.monotonic(), next(self._seq), delivery))
            self._cond.notify()
        return payload

    def deliveries(self) -> list[dict[str, Any]]:
        with self._cond:
            return [dict(d) for d in self._deliveries]

    def clear(self) -> None:
        with self._cond:
            self._deliveries.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery has finished (delivered or given up)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._queue or self._queue[0][0] > time.monotonic()):
                    timeout = None if not self._queue else max(0.0, self._queue[0][0] - time.monotonic())
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, delivery = heapq.heappop(self._queue)
                self._busy += 1
            try:
                self._attempt(delivery)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _attempt(self, delivery: dict[str, Any]) -> None:
        body = json.dumps(delivery["payload"]).encode()
        req = urllib.request.Request(
            delivery["url"],
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Signature": delivery["signature"],
                "User-Agent": "SnapTrade-Sandbox-Webhooks/1",
            },
        )
        status: int | None = None
        error: str | None = None
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            error = str(exc)
        with self._cond:
            delivery["attempts"] += 1
            delivery["last_status"] = status
            delivery["last_error"] = error
            if status is not None and 200 <= status < 300:
                delivery["delivered"] = True
                return
            retry = delivery["attempts"] - 1
            if retry < len(self.retry_delays):
                due = time.monotonic() + self.retry_delays[retry]
                heapq.heappush(self._queue, (due, next(self._seq), delivery))
