"""`spotify-sync serve` as a child process on a free port, for the API's e2e tests."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

from tests.e2e.pipeline_harness import CLI, ROOT

API_TOKEN = "e2e-api-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """The API server in its own process; its output goes to a file (`log()`)."""

    def __init__(self, env: dict[str, str], workers: int = 1, port: int | None = None):
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # Open for the server's whole life (its stdout); removed in __exit__.
        self._log = tempfile.NamedTemporaryFile(prefix="api-", suffix=".log", delete=False)  # noqa: SIM115
        env = {"API_TOKENS": API_TOKEN, **env}
        self.process = subprocess.Popen(
            [CLI, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        # Idle connections dropped before uvicorn's 5 s keep-alive ends, so none is reused as it closes.
        self.http = httpx.Client(base_url=self.base_url, timeout=10, headers={"Authorization": f"Bearer {API_TOKEN}"},
                                 limits=httpx.Limits(keepalive_expiry=1.0))
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited:\n" + self.log()
            try:
                if httpx.get(self.base_url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not answer /health:\n" + self.log())

    def search(self, q: str, **params) -> httpx.Response:
        return self.http.get("/v1/search", params={"q": q, **params})

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
