"""What every endpoint shares: refusals as JSON, the session of a request, and the guard.

:class:`Guard` checks the ``Host`` header (a page on another site that resolves its name to
127.0.0.1, "DNS rebinding", is refused), bounds request bodies before they are read, and gives
every response the same security headers; :func:`error_response` turns every failure into JSON
whose message the page shows as it is.
"""

from __future__ import annotations

import json

from .server import App, Session, SessionGone

#: Sent with every response: nothing from elsewhere, no inline script, not framed, no sniffing.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


class Refused(ValueError):
    """A request the app will not do, with its HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def state(request) -> App:
    return request.app.state.seglab


def session_of(request) -> Session:
    return state(request).session(request.headers.get("x-seglab-session"))


class Guard:
    """ASGI middleware: the Host check, the body-size bound and the security headers."""

    def __init__(self, app, state: App) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(headers)
        if refusal is not None:
            return await _send_json(send, {"error": refusal[1]}, refusal[0])

        async def secured(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    *((k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()),
                ]
            await send(message)

        await self.app(scope, receive, secured)

    def _refusal(self, headers: dict) -> tuple[int, str] | None:
        allowed = self.state.allowed_hosts
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if allowed is not None and name.lower() not in allowed:
            return 421, (
                f"this app answers to {', '.join(sorted(allowed))}, not {host!r}; "
                "start it with --host NAME to serve another name"
            )
        limit = self.state.max_bytes + 1_000_000  # the file and its form fields
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return 400, "the request's Content-Length is not a number"
        if length > limit:
            return 413, (
                f"the upload is {length / 1e6:.1f} MB; the limit is "
                f"{self.state.max_bytes / 1e6:g} MB"
            )
        return None


async def _send_json(send, body: dict, status: int) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def error_response(request, exc: Exception):
    """One handler for every failure: a user's mistake is a 4xx with its message; a bug is a
    500 whose message the page shows, and the server goes on."""
    import logging

    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse

    if isinstance(exc, SessionGone):
        return JSONResponse({"error": str(exc), "session": "gone"}, status_code=410)
    if isinstance(exc, Refused):
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    if isinstance(exc, (ValueError, FileNotFoundError)):
        return JSONResponse({"error": " ".join(str(exc).split())}, status_code=400)
    logging.getLogger(__name__).error("request failed", exc_info=exc)
    return JSONResponse(
        {"error": f"the server failed: {type(exc).__name__}: {exc}"}, status_code=500
    )
