"""Anthropic-style error bodies: `{"type": "error", "error": {"type": ..., "message": ...}}`."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# HTTP status → Anthropic error type (https://docs.anthropic.com/en/api/errors).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    501: "api_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    return _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_body(status: int, message: str, kind: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind or error_type(status), "message": message}}


def error_response(status: int, message: str, kind: str | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(error_body(status, message, kind)).encode(),
        content_type="application/json",
    )


def is_anthropic_error(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and data.get("type") == "error"
        and isinstance(data.get("error"), dict)
        and isinstance(data["error"].get("message"), str)
    )
