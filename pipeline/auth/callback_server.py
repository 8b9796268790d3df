"""The CLI's OAuth callback: a small HTTP server on the redirect URI's loopback address.

Contract: it listens on the host and port of an http loopback redirect URI (127.0.0.0/8 or [::1]; the rule
lives in `shared.settings.parse_redirect_uri`) and waits for the one redirect that carries the expected
`state` and either a `code` or an `error`. That request ends the flow: `wait()` returns its query parameters.
Any other request is answered 400 (wrong or missing state, neither code nor error) or 404 (another path) and
the flow keeps waiting, so a stray or forged request can neither end nor hijack it.

Each connection is served on its own thread with a socket timeout: a client that sends half a request and
holds the connection open is dropped after `request_timeout_s` and never blocks the real redirect or the
shutdown. Nothing is logged: the query string holds the authorisation code.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from shared.settings import parse_redirect_uri

DEFAULT_REQUEST_TIMEOUT_S = 10.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a connection still open at shutdown must not keep the process waiting

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the default prints a traceback to stderr; a broken browser connection is not our error


class _Server6(_Server):
    address_family = socket.AF_INET6


class CallbackServer:
    """Use as a context manager: `with CallbackServer(uri, state) as server: params = server.wait(300)`."""

    def __init__(self, redirect_uri: str, expected_state: str, *,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S) -> None:
        """Bind the redirect URI's address (OSError when it cannot). ValueError for a URI this server cannot
        serve: anything but http on a loopback address."""
        parts = urlsplit(parse_redirect_uri(redirect_uri))
        if parts.scheme != "http":
            raise ValueError("an http://127.0.0.1:PORT/... or http://[::1]:PORT/... redirect URI "
                             "(spotify-sync connect receives the redirect itself and serves no https)")
        host = parts.hostname or ""
        self.path = parts.path or "/"
        self._expected_state = expected_state
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._params: dict[str, str] = {}

        handler = _handler_for(self, request_timeout_s)
        server_class = _Server6 if ipaddress.ip_address(host).version == 6 else _Server
        self._server = server_class((host, parts.port or 80), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-callback", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout_s: float) -> dict[str, str] | None:
        """The accepted redirect's query parameters (`state` and `code`, or `state` and `error`), or None if
        none came within `timeout_s`."""
        return dict(self._params) if self._done.wait(timeout_s) else None

    def _accept(self, params: dict[str, str]) -> tuple[int, str]:
        """Decide on one redirect: (HTTP status, text for the browser). Ends the flow only for the right one."""
        # compare_digest: the state is the flow's secret against cross-site request forgery.
        if not hmac.compare_digest(params.get("state", ""), self._expected_state):
            return 400, "This redirect does not belong to the sign-in this terminal started; it was ignored."
        if "code" not in params and "error" not in params:
            return 400, "This redirect carries neither a code nor an error; it was ignored."
        with self._lock:
            if self._done.is_set():
                return 400, "This sign-in has already been handled; see the terminal."
            self._params = params
            self._done.set()
        if "code" in params:
            return 200, "Spotify is connected; you can close this window."
        return 200, "Spotify did not connect; see the terminal."


def _handler_for(owner: CallbackServer, request_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = request_timeout_s  # StreamRequestHandler applies it to the connection's socket

        def do_GET(self) -> None:  # http.server's naming
            url = urlsplit(self.path)
            if url.path != owner.path:
                self._answer(404, "Not found.")
                return
            status, text = owner._accept({k: v[0] for k, v in parse_qs(url.query).items()})
            self._answer(status, text)

        def _answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request line holds the authorisation code: never log it

    return Handler
