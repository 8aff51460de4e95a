"""HMAC signatures exactly as SnapTrade computes them (REFERENCE §1 and §11).

One place for the canonical JSON form: request signatures, request verification and webhook signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

LEGACY_PREFIX = "/api/v1"


def canonical_json(obj: Any) -> str:
    """The compact, key-sorted JSON SnapTrade hashes (ensure_ascii left at its default, like the SDK)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _hmac_b64(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def request_signature(consumer_key: str, path: str, query: str, content: Any) -> str:
    """Signature header for a request; `content` is the parsed JSON body, and `{}` signs as null like the SDK."""
    if content == {}:
        content = None
    message = canonical_json({"content": content, "path": path, "query": query})
    return _hmac_b64(consumer_key, message)


def candidate_paths(path: str) -> list[str]:
    """Paths a client may have signed: as sent, without the legacy prefix, and with it added."""
    if path.startswith(LEGACY_PREFIX + "/"):
        return [path, path[len(LEGACY_PREFIX) :]]
    return [path, LEGACY_PREFIX + path]


def verify_request(consumer_key: str, signature: str | None, path: str, query: str, content: Any) -> bool:
    """True when `signature` matches one of the paths a SnapTrade client could have signed."""
    if not signature:
        return False
    for candidate in candidate_paths(path):
        expected = request_signature(consumer_key, candidate, query, content)
        if hmac.compare_digest(expected, signature):
            return True
    return False


def webhook_signature(consumer_key: str, payload: dict[str, Any]) -> str:
    """Signature header of a webhook: HMAC over the canonical payload, no {content,path,query} wrapper."""
    return _hmac_b64(consumer_key, canonical_json(payload))
