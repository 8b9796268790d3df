"""Logging with loguru: configured once per process, text or JSON lines, secrets masked.

The mask works in two ways, because a secret can reach a log line by either:
- by value: every secret the settings hold (client secret, token keys) and every token the code
  registers with `register_secret()` is replaced wherever it appears;
- by shape: bearer headers, `access_token=...`, `"refresh_token": "..."`, Basic credentials and
  the like are masked even when nobody registered the value.
It applies to the message, to bound extras and to exception text.

Text lines are also made printable (`printable()`): a message or extra holding a newline, a
carriage return or an escape sequence (a Spotify error body, an id from a file) would otherwise
write a second, forged log line or repaint the operator's terminal. The CLI's tables use the
same function. JSON lines need nothing: JSON escapes control characters itself.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

from shared.settings import Settings

MASK = "***"

_SHAPES = [
    # Authorization: Bearer <token> / Basic <base64>
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"),
    # access_token=..., "refresh_token": "...", client_secret: ..., code_verifier, code
    re.compile(
        r"(?i)(\"?(?:access_token|refresh_token|client_secret|code_verifier|id_token|accessToken|refreshToken)\"?"
        r"\s*[:=]\s*\"?)[^\"&\s,}]+"
    ),
]

# The newest registered values (tokens expire: the oldest are dropped past this many), and one
# pattern matching any of them, rebuilt only when the set changes.
MAX_REGISTERED = 10_000
_registered: dict[str, None] = {}
_registered_pattern: re.Pattern | None = None
_registered_lock = threading.Lock()
_configured_with: tuple | None = None


def register_secret(value: str | None) -> None:
    """Mask this exact value in every later log line of the process (tokens, secrets)."""
    global _registered_pattern
    if not value or len(value) < 6 or value in _registered:
        return
    with _registered_lock:
        _registered[value] = None
        while len(_registered) > MAX_REGISTERED:
            del _registered[next(iter(_registered))]
        longest_first = sorted(_registered, key=len, reverse=True)
        _registered_pattern = re.compile("|".join(map(re.escape, longest_first)))


# C0 controls but tab, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode line and
# paragraph separators some viewers break lines on.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _escape(match: re.Match) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r"}.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100
                                                        else f"\\u{ord(char):04x}")


def printable(text: object) -> str:
    """`text` as one line fit for a terminal or a text log: newlines, carriage returns, escape
    sequences and other control characters shown as `\\n`, `\\r`, `\\x1b`...; tab and every
    printable character (any script) kept as they are."""
    return _UNPRINTABLE.sub(_escape, str(text))


def mask(text: str) -> str:
    pattern = _registered_pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _SHAPES[0].sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _SHAPES[1].sub(lambda m: m.group(1) + MASK, text)
    return text


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(v) for v in value)
    return value


def _patch(record: Record) -> None:
    record["message"] = mask(record["message"])
    record["extra"] = _mask_value(record["extra"])
    if record["exception"] is not None:
        exc_type, exc, _tb = record["exception"]
        # The traceback's own text is masked by the sink; the exception's message here.
        record["extra"]["error"] = mask(f"{exc_type.__name__}: {exc}") if exc_type else None


def _json_sink(message) -> None:
    record = message.record
    line = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "message": record["message"],
        "logger": record["name"],
        **{k: v for k, v in record["extra"].items() if v is not None},
    }
    if record["exception"] is not None:
        line["traceback"] = mask("".join(traceback.format_exception(*record["exception"])))
    sys.stderr.write(json.dumps(line, default=str) + "\n")


def _text_sink(message) -> None:
    # The whole formatted line, traceback included, goes through the mask once more.
    sys.stderr.write(mask(str(message)))


def _text_format(record: Record) -> str:
    # The message and extras are made printable here, not in the patcher: JSON lines keep them
    # as they are. The traceback ({exception}) is ours and keeps its newlines.
    extras = " ".join(f"{k}={v}" for k, v in record["extra"].items() if v is not None and k != "error")
    tail = f" | {extras}" if extras else ""
    line = printable(record["message"]) + printable(tail)
    return ("{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {name} | "
            + line.replace("{", "{{").replace("}", "}}") + "\n{exception}")


def setup_logging(settings: Settings) -> None:
    """Configure loguru for this process. Calling it again with the same settings does nothing."""
    global _configured_with
    key = (settings.log_level, settings.log_format)
    for secret in settings.secrets():
        register_secret(secret)
    if _configured_with == key:
        return
    logger.remove()
    logger.configure(patcher=_patch)
    if settings.log_format == "json":
        logger.add(_json_sink, level=settings.log_level, backtrace=False, diagnose=False)
    else:
        logger.add(_text_sink, level=settings.log_level, format=_text_format, backtrace=False, diagnose=False)
    _configured_with = key
