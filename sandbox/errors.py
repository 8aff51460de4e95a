"""SnapTrade's error wire format and the codes the emulator answers with (REFERENCE §9).

Handlers raise `ApiError`; the server turns it into `{"detail","status_code","code"}`.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error response in SnapTrade's shape; `code` is a string on the wire."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        return {"detail": self.detail, "status_code": self.status, "code": self.code}


def bad_signature() -> ApiError:
    return ApiError(401, "1076", "Unable to verify signature sent")


def credentials_missing() -> ApiError:
    return ApiError(401, "0000", "Authentication credentials were not provided.")


def invalid_timestamp() -> ApiError:
    return ApiError(
        401, "1076", "Invalid timestamp. Timestamp must be within 5 minutes of the server time, in seconds."
    )


def bad_user_secret() -> ApiError:
    return ApiError(401, "1083", "Invalid userID or userSecret provided")


def not_found(what: str = "Resource") -> ApiError:
    return ApiError(404, "1011", f"{what} does not exist")


def invalid_input(detail: str) -> ApiError:
    return ApiError(400, "1012", detail)


def connection_disabled(auth_id: str) -> ApiError:
    return ApiError(402, "3003", f"Connection {auth_id} is disabled. Please reconnect it to continue.")


def already_disabled(auth_id: str) -> ApiError:
    return ApiError(402, "3011", f"Connection {auth_id} is already disabled")


def throttled(retry_after: int, headers: dict[str, str]) -> ApiError:
    detail = f"Request was throttled. Expected available in {retry_after} seconds."
    return ApiError(429, "0000", detail, {**headers, "Retry-After": str(retry_after)})


def unexpected() -> ApiError:
    return ApiError(500, "1000", "An unexpected error occurred. Please try again later.")


def brokerage_failure() -> ApiError:
    return ApiError(503, "3002", "Unable to sync with brokerage account. Invalid response from Brokerage API.")
