"""Running the emulator: in this process (uvicorn, blocking), in a thread, or as a subprocess.

  serve(config, host, port)                          blocking; what the CLI runs
  start_in_thread(config, host="127.0.0.1", port=0)  -> ServerHandle(.base_url, .app, .state, .stop())
  start_subprocess(config=None, host="127.0.0.1", port=0, extra_args=(), env=None)
                                                     -> SubprocessHandle(.base_url, .process, .stop())
Port 0 means a free port. uvicorn uses httptools (and uvloop when installed) through a small
protocol subclass that puts the connection's transport in the ASGI scope, so a "drop" fault can
close the socket without a response.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from emulator.app import create_app
from emulator.config import EmulatorConfig
from emulator.responses import TRANSPORT_SCOPE_KEY
from emulator.state import EmulatorState

try:  # httptools is the fast parser; without it, uvicorn's h11 and no clean "drop" (see responses)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class EmulatorHttpToolsProtocol(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            self.scope[TRANSPORT_SCOPE_KEY] = self.transport  # type: ignore[typeddict-unknown-key,literal-required]
            super().on_headers_complete()

    HTTP_PROTOCOL: type | str = EmulatorHttpToolsProtocol
except ImportError:  # pragma: no cover
    HTTP_PROTOCOL = "h11"


def _loop() -> str:
    try:
        import uvloop  # noqa: F401

        return "uvloop"
    except ImportError:  # pragma: no cover
        return "asyncio"


def uvicorn_config(app: Starlette, host: str, port: int, log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app, host=host, port=port, http=HTTP_PROTOCOL, loop=_loop(), lifespan="on",
        log_level=log_level, access_log=False, timeout_keep_alive=30, backlog=2048,
    )


def serve(config: EmulatorConfig, host: str = "127.0.0.1", port: int = 8900, log_level: str = "info") -> None:
    uvicorn.Server(uvicorn_config(create_app(config), host, port, log_level)).run()


def _bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@dataclass
class ServerHandle:
    base_url: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def state(self) -> EmulatorState:
        return self.app.state.emulator

    def stop(self, timeout_s: float = 10.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout_s)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(config: EmulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> ServerHandle:
    """Start a server in a daemon thread; returns once it accepts connections."""
    app = create_app(config or EmulatorConfig())
    sock = _bound_socket(host, port)
    server = uvicorn.Server(uvicorn_config(app, host, sock.getsockname()[1]))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the emulator did not start")
        time.sleep(0.01)
    return ServerHandle(_url(host, sock.getsockname()[1]), app, server, thread)


@dataclass
class SubprocessHandle:
    base_url: str
    process: subprocess.Popen

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> SubprocessHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port(host: str) -> int:
    with _bound_socket(host, 0) as sock:
        return sock.getsockname()[1]


def start_subprocess(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    timeout_s: float = 20.0,
) -> SubprocessHandle:
    """Start `python -m emulator.cli` with `config` (passed as --config-json); returns once
    /_emulator/health answers."""
    port = port or _free_port(host)
    args = [sys.executable, "-m", "emulator.cli", "--host", host, "--port", str(port), "--log-level", "warning"]
    if config is not None:
        data = config.to_json()
        for fixed in ("redis_url", "redis_prefix"):
            value = data.pop(fixed)
            if value:
                args += [f"--{fixed.replace('_', '-')}", value]
        args += ["--config-json", json.dumps(data)]
    root = str(Path(__file__).resolve().parent.parent)
    process_env = {**os.environ, **(env or {})}
    process_env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, process_env.get("PYTHONPATH")]))
    process = subprocess.Popen([*args, *extra_args], env=process_env, cwd=root)
    handle = SubprocessHandle(_url(host, port), process)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the emulator exited with {process.returncode}")
        try:
            if httpx.get(handle.base_url + "/_emulator/health", timeout=1).status_code == 200:
                return handle
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            handle.stop()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.05)
