"""Counting the round trips a piece of work makes to PostgreSQL and to Redis, on the wire.

- PostgreSQL: a TCP proxy in front of the real server. Every request the client flushes and then
  waits on ends in one frontend message: a simple Query ('Q', BEGIN and COMMIT included) or the
  Sync ('S') closing an extended-protocol exchange (Parse/Bind/Execute). So the proxy counts 'Q'
  and 'S' messages, whatever the driver does above them (SQLAlchemy's pre-ping, psycopg's own
  BEGIN), and labels each with the statement it carried.
- Redis: a connection class that counts every packed request it sends (a pipeline is one, a Lua
  script one, a health-check PING one), labelled with the command names in it.

Both keep (label, ...) lists; `snapshot()` / `reset()` let a test count one stretch of work.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import redis

_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._labels: list[str] = []

    def add(self, label: str) -> None:
        with self._lock:
            self._labels.append(label)

    def reset(self) -> None:
        with self._lock:
            self._labels.clear()

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self._labels)

    def total(self) -> int:
        with self._lock:
            return len(self._labels)

    def by_label(self) -> Counter:
        return Counter(self.snapshot())


# --- PostgreSQL -----------------------------------------------------------------------------------


def _label(query: str) -> str:
    words = " ".join(query.split())
    return words[:90]


class _FrontendParser:
    """Reads the client's side of one connection and tallies its round trips."""

    def __init__(self, tally: Tally):
        self._tally = tally
        self._buffer = bytearray()
        self._started = False
        self._statements: dict[str, str] = {}  # prepared statement name -> its text
        self._current = ""

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while self._one():
            pass

    def _one(self) -> bool:
        buf = self._buffer
        if not self._started:
            if len(buf) < 8:
                return False
            length, code = struct.unpack("!ii", buf[:8])
            if len(buf) < length:
                return False
            if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                self._started = True  # the startup message; authentication follows
            del buf[:length]
            return True
        if len(buf) < 5:
            return False
        kind = bytes(buf[:1])
        (length,) = struct.unpack("!i", buf[1:5])
        if len(buf) < 1 + length:
            return False
        body = bytes(buf[5:1 + length])
        del buf[:1 + length]
        self._message(kind, body)
        return True

    def _message(self, kind: bytes, body: bytes) -> None:
        if kind == b"Q":
            self._tally.add(_label(body.split(b"\0", 1)[0].decode(errors="replace")))
        elif kind == b"P":
            name, rest = body.split(b"\0", 1)
            self._current = _label(rest.split(b"\0", 1)[0].decode(errors="replace"))
            self._statements[name.decode()] = self._current
        elif kind == b"B":
            _portal, rest = body.split(b"\0", 1)
            statement = rest.split(b"\0", 1)[0].decode()
            if statement:
                self._current = self._statements.get(statement, self._current)
        elif kind == b"S":
            self._tally.add(self._current)


class PostgresCounter:
    """A counting TCP proxy to the server of `server_url`; `url(database_url)` points a client at it."""

    def __init__(self, server_url: str):
        parts = urlsplit(server_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.tally = Tally()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="pg-counter", daemon=True).start()

    def url(self, database_url: str) -> str:
        """The same database through the proxy (no TLS or GSS negotiation: the proxy reads the
        plain protocol)."""
        parts = urlsplit(database_url)
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0] + "@" if len(netloc) == 2 else ""
        query = "sslmode=disable&gssencmode=disable"
        return parts._replace(netloc=f"{user}127.0.0.1:{self.port}",
                              query=f"{parts.query}&{query}" if parts.query else query).geturl()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._target)
            self._sockets += [client, server]
            parser = _FrontendParser(self.tally)
            threading.Thread(target=self._pump, args=(client, server, parser.feed), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, None), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, observe) -> None:
        try:
            while data := source.recv(65536):
                if observe is not None:
                    observe(data)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closing = True
        self._listener.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass


# --- Redis ----------------------------------------------------------------------------------------


def _command_names(packed) -> list[str]:
    """The command names in a packed RESP request (one, or a pipeline's several)."""
    data = packed if isinstance(packed, (bytes, bytearray)) else b"".join(bytes(p) for p in packed)
    names, i = [], 0
    while i < len(data) and data[i:i + 1] == b"*":
        end = data.index(b"\r\n", i)
        argc = int(data[i + 1:end])
        i = end + 2
        for k in range(argc):
            end = data.index(b"\r\n", i)
            size = int(data[i + 1:end])
            if k == 0:
                names.append(data[end + 2:end + 2 + size].decode(errors="replace").upper())
            i = end + 2 + size + 2
    return names


def counting_connection_class(tally: Tally) -> type[redis.Connection]:
    class CountingConnection(redis.Connection):
        def send_packed_command(self, command, check_health=True):
            tally.add("+".join(_command_names(command)))
            return super().send_packed_command(command, check_health)

    return CountingConnection


@contextmanager
def counted(*tallies: Tally) -> Iterator[list[list[str]]]:
    """Count the block: yields a list that holds, once the block has ended, each tally's labels
    of the round trips made inside it (in the order of `tallies`)."""
    for tally in tallies:
        tally.reset()
    seen: list[list[str]] = []
    yield seen
    seen.extend(tally.snapshot() for tally in tallies)
