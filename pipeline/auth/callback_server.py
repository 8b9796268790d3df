"""A one-shot HTTP server on the redirect URI's loopback address: it takes the first request to
the redirect path, answers the browser, and hands the query (code, state or error) back."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit


class CallbackServer:
    def __init__(self, redirect_uri: str):
        parts = urlsplit(redirect_uri)
        self.path = parts.path or "/"
        self._received = threading.Event()
        self.params: dict[str, str] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlsplit(self.path)
                if url.path != outer.path:
                    self.send_error(404)
                    return
                outer.params = {k: v[0] for k, v in parse_qs(url.query).items()}
                ok = "code" in outer.params
                body = (b"Spotify is connected; you can close this window." if ok
                        else b"Spotify did not connect; see the terminal.")
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                outer._received.set()

            def log_message(self, *args) -> None:  # the query holds the code: never log it
                pass

        self._server = HTTPServer((parts.hostname, parts.port or 80), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="oauth-callback", daemon=True)

    def __enter__(self) -> CallbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait(self, timeout_s: float) -> dict[str, str] | None:
        """The callback's query parameters, or None if none came in time."""
        return self.params if self._received.wait(timeout_s) else None
