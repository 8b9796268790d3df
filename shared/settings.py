"""Settings: read once from the environment into one typed object, then passed down.

Every value is parsed when the settings are loaded, so a malformed value fails at once with a
`SettingsError` naming the variable and what it expects. A *missing* value fails only where it
is needed (`settings.require_database_url()` and friends): `spotify-sync keys generate` has no
use for a database.

Nothing here reads the environment at import time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

SPOTIFY_API_BASE_URL = "https://api.spotify.com/v1"
SPOTIFY_ACCOUNTS_BASE_URL = "https://accounts.spotify.com"


class SettingsError(Exception):
    """A setting is missing or malformed. The message is one line, fit to show a user."""


@dataclass(frozen=True)
class Rate:
    """A rate budget: `requests` per `per_s` seconds.

    With `learn_up_to` set (SPOTIFY_RATE_LIMIT=auto), `requests` is only where the fleet starts:
    the budget is learned from Spotify's answers (pipeline/ratecontrol/learning.py), never above
    `learn_up_to`."""

    requests: int
    per_s: int
    learn_up_to: int | None = None

    @property
    def learned(self) -> bool:
        return self.learn_up_to is not None

    def __str__(self) -> str:
        if self.learn_up_to is not None:
            return f"auto:start={self.requests},max={self.learn_up_to},window={self.per_s}s"
        return f"{self.requests}/{self.per_s}s"


# SPOTIFY_RATE_LIMIT=auto: Spotify's window is a rolling 30 s one; the start is the seed's 100 per
# minute as a 30 s figure; the ceiling keeps a runaway estimate from ever flooding Spotify.
AUTO_START, AUTO_MAX, AUTO_WINDOW_S = 50, 3000, 30


# --- parsers: each takes the raw string and returns the value or raises ValueError(expected) ---

_DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# ASCII digits only: `\d`, int() and str.isdigit() also take '²' or '١٠', which no operator means.
_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd]?)\s*$")
_DECIMAL = re.compile(r"^(?:[0-9]{1,9}(?:\.[0-9]*)?|\.[0-9]+)$")

# Upper bounds: a value past them is a typo, and would overflow a PostgreSQL interval or a timer later.
MAX_DURATION_S = 10 * 366 * 86400  # ten years
MAX_SECONDS = 3600.0  # timeouts and retry budgets: an hour
MAX_RATE_REQUESTS = 1_000_000


def parse_duration_s(raw: str, *, minimum: int = 0) -> int:
    """'90' / '90s' / '15m' / '24h' / '2d' -> seconds, from `minimum` to ten years."""
    expected = "a duration" + (" above zero" if minimum > 0 else "") + " like 30s, 15m, 24h or 2d"
    match = _DURATION.match(raw)
    if not match:
        raise ValueError(expected)
    seconds = int(match.group(1)) * _DURATION_UNITS_S[match.group(2) or "s"]
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{expected}, at most {MAX_DURATION_S // 86400}d")
    if seconds < minimum:
        raise ValueError(expected)
    return seconds


def parse_positive_duration_s(raw: str) -> int:
    """A duration where zero makes no sense (a lease, a wait after a 429, a recheck period)."""
    return parse_duration_s(raw, minimum=1)


def parse_rate(raw: str) -> Rate:
    """'100/60s' / '100/1m' / '50/10' -> Rate."""
    expected = "a rate like 100/60s (requests per window)"
    requests, sep, window = raw.partition("/")
    if not sep or not re.fullmatch(r"[0-9]{1,9}", requests.strip()):
        raise ValueError(expected)
    try:
        per_s = parse_duration_s(window)
    except ValueError:
        raise ValueError(expected) from None
    if not 1 <= int(requests) <= MAX_RATE_REQUESTS or per_s < 1:
        raise ValueError(expected + f", both numbers above zero, at most {MAX_RATE_REQUESTS:,} requests")
    return Rate(int(requests), per_s)


def parse_rate_limit(raw: str) -> Rate:
    """SPOTIFY_RATE_LIMIT: a static rate ('100/60s'), or 'auto' / 'auto:start=50,max=3000,window=30s'
    for a budget learned from Spotify's answers."""
    if not raw.strip().lower().startswith("auto"):
        return parse_rate(raw)
    expected = "auto, or auto:start=N,max=N,window=30s (any of the three; start <= max)"
    head, _, options = raw.strip().partition(":")
    if head.lower() != "auto" or (_ and not options.strip()):
        raise ValueError(expected)
    values = {"start": AUTO_START, "max": AUTO_MAX, "window": AUTO_WINDOW_S}
    for option in filter(None, (o.strip() for o in options.split(","))):
        name, sep, value = (part.strip() for part in option.partition("="))
        if not sep or name not in values:
            raise ValueError(f"{expected}; {option!r} is not one of them")
        try:
            values[name] = parse_duration_s(value, minimum=1) if name == "window" else parse_count(value)
        except ValueError:
            raise ValueError(f"{expected}; {name}={value!r} is not a number above zero") from None
        if values[name] < 1:
            raise ValueError(f"{expected}; {name} must be above zero")
    if values["start"] > values["max"] or values["max"] > MAX_RATE_REQUESTS:
        raise ValueError(f"{expected}, max at most {MAX_RATE_REQUESTS:,}")
    return Rate(values["start"], values["window"], learn_up_to=values["max"])


def parse_positive_float(raw: str) -> float:
    """'10' / '2.5' -> seconds above zero, at most an hour (no nan, inf, exponents or '1_0')."""
    expected = f"a number of seconds above zero, like 10 or 2.5, at most {MAX_SECONDS:.0f}"
    if not _DECIMAL.match(raw.strip()):
        raise ValueError(expected)
    value = float(raw)
    if not 0 < value <= MAX_SECONDS:
        raise ValueError(expected)
    return value


_WAIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_wait_s(raw: str) -> float:
    """'200ms' / '1.5s' / '2' (seconds) / '1m' -> seconds, a float (short waits: ms allowed)."""
    match = _WAIT.match(raw)
    if not match:
        raise ValueError("a duration like 200ms, 1.5s or 2s")
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2) or "s"]


def parse_positive_count(raw: str) -> int:
    """'4' -> 4 (a whole number above zero)."""
    if not raw.strip().isdigit() or int(raw) < 1:
        raise ValueError("a whole number above zero")
    return int(raw)


_SWITCH = {"on": True, "true": True, "yes": True, "1": True, "off": False, "false": False, "no": False, "0": False}


def parse_switch(raw: str) -> bool:
    """'on' / 'off' (or true/false, yes/no, 1/0, any case) -> a bool."""
    try:
        return _SWITCH[raw.strip().lower()]
    except KeyError:
        raise ValueError("on or off") from None


def parse_api_tokens(raw: str) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
    if not tokens:
        raise ValueError("a comma-separated list of bearer tokens")
    if any(len(t) < 16 for t in tokens):
        # Never echo the value: it is a secret.
        raise ValueError("a comma-separated list of bearer tokens of at least 16 characters each")
    return tokens


def parse_count(raw: str, *, maximum: int = 1_000_000) -> int:
    """'5' -> 5 (a whole number in ASCII digits, from zero to `maximum`)."""
    expected = f"a whole number from 0 to {maximum:,}"
    if not re.fullmatch(r"[0-9]{1,9}", raw.strip()) or int(raw) > maximum:
        raise ValueError(expected)
    return int(raw)


def parse_retries(raw: str) -> int:
    return parse_count(raw, maximum=100)


def _url(*schemes: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        expected = f"a URL starting with {' or '.join(s + '://' for s in schemes)}"
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not (parts.netloc or parts.query or parts.path):
            raise ValueError(expected)
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            port = parts.netloc.rpartition("@")[2].rpartition(":")[2]
            raise ValueError(f"{expected} (port {port!r} is not a number from 1 to 65535)") from None
        return raw.rstrip("/") if parts.scheme.startswith("http") else raw

    return parse


def parse_redirect_uri(raw: str) -> str:
    """An OAuth redirect URI: https on any host, or http on a loopback address (127.0.0.0/8 or [::1]).

    Spotify accepts plain http only for loopback IP literals, and the CLI's callback server listens on the
    URI's host: an http URI on 0.0.0.0, a LAN address or a name would expose the code to the network.
    """
    parts = urlsplit(raw)
    try:
        parts.port  # noqa: B018 (urlsplit checks the port only when it is read)
    except ValueError:
        raise ValueError("an http(s) URL with a numeric port, such as http://127.0.0.1:8888/callback") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http(s) URL such as http://127.0.0.1:8888/callback")
    if parts.hostname == "localhost":
        # Spotify refuses 'localhost' redirect URIs since November 2025.
        raise ValueError("a loopback address like http://127.0.0.1:8888/callback (Spotify refuses 'localhost')")
    if parts.scheme == "http":
        import ipaddress

        try:
            loopback = ipaddress.ip_address(parts.hostname).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError("https, or http on a loopback address (127.0.0.1 or [::1]) such as "
                             "http://127.0.0.1:8888/callback")
    return raw


def parse_return_urls(raw: str) -> tuple[str, ...]:
    """CONNECT_RETURN_URL: the pages a browser may be sent back to after connecting Spotify,
    comma-separated absolute http(s) URLs without a fragment (each kept exactly as written)."""
    expected = "comma-separated http(s) URLs such as https://app.example.com/settings/spotify"
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    if not urls:
        raise ValueError(expected)
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ValueError(f"{expected} ({url!r} is not one)")
    return urls


def parse_token_keys(raw: str) -> tuple[str, ...]:
    from cryptography.fernet import Fernet

    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    if not keys:
        raise ValueError("a comma-separated list of keys made by `spotify-sync keys generate`")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            # Never echo the value: it is a secret.
            raise ValueError(
                f"a comma-separated list of keys made by `spotify-sync keys generate` (key {position} is not one)"
            ) from None
    return keys


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError("one of " + ", ".join(choices))
        return value

    return parse


def _log_level(raw: str) -> str:
    return _choice("trace", "debug", "info", "success", "warning", "error", "critical")(raw).upper()


def _namespace(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", raw):
        raise ValueError("letters, digits and _.:- (at most 64)")
    return raw


def _setting(env: str, parse: Callable[[str], Any] | None = None, *, secret: bool = False, default: Any = None):
    """A dataclass field bound to an environment variable and a parser."""
    return field(default=default, metadata={"env": env, "parse": parse or str, "secret": secret})


@dataclass(frozen=True)
class Settings:
    database_url: str | None = _setting("DATABASE_URL", _url("postgresql", "postgres", "postgresql+psycopg"))
    redis_url: str | None = _setting("REDIS_URL", _url("redis", "rediss", "unix"))
    # Dramatiq's broker: the Redis above unless this names another (amqp:// for RabbitMQ).
    broker_url: str | None = _setting("BROKER_URL", _url("redis", "rediss", "unix", "amqp", "amqps"))
    redis_namespace: str = _setting("REDIS_NAMESPACE", _namespace, default="spotify-sync")

    spotify_client_id: str | None = _setting("SPOTIFY_CLIENT_ID")
    spotify_client_secret: str | None = _setting("SPOTIFY_CLIENT_SECRET", secret=True)
    spotify_redirect_uri: str = _setting(
        "SPOTIFY_REDIRECT_URI", parse_redirect_uri, default="http://127.0.0.1:8888/callback"
    )
    spotify_api_base_url: str = _setting("SPOTIFY_API_BASE_URL", _url("http", "https"), default=SPOTIFY_API_BASE_URL)
    spotify_accounts_base_url: str = _setting(
        "SPOTIFY_ACCOUNTS_BASE_URL", _url("http", "https"), default=SPOTIFY_ACCOUNTS_BASE_URL
    )
    spotify_rate_limit: Rate = _setting("SPOTIFY_RATE_LIMIT", parse_rate_limit, default=Rate(100, 60))
    # The developer account the client id belongs to: since July 2026 Spotify counts development-mode
    # quota per account, so every client id naming the same account shares one quota box. Unset: the
    # client id is its own account.
    spotify_developer_account: str | None = _setting("SPOTIFY_DEVELOPER_ACCOUNT", _namespace)
    spotify_token_keys: tuple[str, ...] = _setting("SPOTIFY_TOKEN_KEYS", parse_token_keys, secret=True, default=())
    # A 429 without a usable Retry-After (missing, 0, empty body) is taken to mean this long.
    retry_after_default_s: int = _setting("SPOTIFY_RETRY_AFTER_DEFAULT", parse_positive_duration_s, default=30)
    # Transient faults are retried inside a call for at most this long (never a Retry-After).
    retry_budget_s: float = _setting("SPOTIFY_RETRY_BUDGET", parse_positive_float, default=8.0)
    connect_timeout_s: float = _setting("SPOTIFY_CONNECT_TIMEOUT", parse_positive_float, default=5.0)
    read_timeout_s: float = _setting("SPOTIFY_READ_TIMEOUT", parse_positive_float, default=10.0)
    capability_recheck_s: int = _setting("SPOTIFY_CAPABILITY_RECHECK", parse_positive_duration_s, default=86400)

    # Cache TTLs, the seed's figures: track data a day, popularity an hour.
    track_ttl_s: int = _setting("TRACK_TTL", parse_duration_s, default=86400)
    popularity_ttl_s: int = _setting("POPULARITY_TTL", parse_duration_s, default=3600)

    # The job ledger (pipeline/store/ledger.py): a running job's lease is renewed every third of it while
    # it runs; a lease that runs out means its worker died, and another worker takes the job over.
    job_lease_s: int = _setting("JOB_LEASE", parse_positive_duration_s, default=20)
    # Transient failures of a job (not rate limits, which park it) before it fails for good.
    job_max_retries: int = _setting("JOB_MAX_RETRIES", parse_retries, default=5)

    # The HTTP API (`spotify-sync serve`): the bearer tokens callers present, how long a search
    # waits for Spotify before it answers with the local results, and how many Spotify searches
    # may be in flight per process (more are skipped, never queued).
    api_tokens: tuple[str, ...] = _setting("API_TOKENS", parse_api_tokens, secret=True, default=())
    search_enrich_wait_s: float = _setting("SEARCH_ENRICH_WAIT", parse_wait_s, default=0.2)
    search_enrich_max_in_flight: int = _setting("SEARCH_ENRICH_MAX_IN_FLIGHT", parse_positive_count, default=4)
    # Whether this process drains the search queue (pipeline/search_indexer.py). Every worker and
    # API process does by default, one at a time fleet-wide; off leaves it to the others (a host
    # far from the database, or a benchmark of the write path alone).
    search_indexer: bool = _setting("SEARCH_INDEXER", parse_switch, default=True)

    # Users connecting Spotify through the API (api/connections.py): the redirect URI registered with
    # Spotify for the API's /auth/spotify/callback (https, or http on loopback, like SPOTIFY_REDIRECT_URI),
    # and the pages the browser may be sent back to afterwards (the first is the default; nothing else
    # is ever a redirect target: no open redirect).
    api_redirect_uri: str | None = _setting("API_REDIRECT_URI", parse_redirect_uri)
    connect_return_urls: tuple[str, ...] = _setting("CONNECT_RETURN_URL", parse_return_urls, default=())

    log_level: str = _setting("LOG_LEVEL", _log_level, default="INFO")
    log_format: str = _setting("LOG_FORMAT", _choice("text", "json"), default="text")

    # Where `spotify-sync services up` keeps the embedded PostgreSQL and Redis.
    state_dir: Path = _setting("SPOTIFY_SYNC_STATE_DIR", Path, default=None)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse every variable that is set; raise SettingsError on the first malformed one."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw.strip() == "":
                continue
            try:
                values[f.name] = f.metadata["parse"](raw.strip())
            except ValueError as exc:
                shown = "" if f.metadata["secret"] else f", got {without_password(raw.strip())!r}"
                raise SettingsError(f"{f.metadata['env']}: expected {exc}{shown}") from None
        values.setdefault("state_dir", default_state_dir())
        settings = cls(**values)
        return settings.with_embedded_services()

    def with_embedded_services(self) -> Settings:
        """Fill DATABASE_URL / REDIS_URL from `spotify-sync services up`, when they are not set."""
        if self.database_url and self.redis_url:
            return self
        from shared import services  # late: services imports settings

        running = services.read_state(self.state_dir)
        changes = {}
        if not self.database_url and running.get("database_url"):
            changes["database_url"] = running["database_url"]
        if not self.redis_url and running.get("redis_url"):
            changes["redis_url"] = running["redis_url"]
        return self.replace(**changes) if changes else self

    def as_environ(self) -> dict[str, str]:
        """The environment variables that load back into these settings (for child processes)."""
        environ = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            environ[f.metadata["env"]] = ",".join(value) if isinstance(value, tuple) else str(value)
        return environ

    def replace(self, **changes: Any) -> Settings:
        from dataclasses import replace

        return replace(self, **changes)

    # --- the values some commands cannot do without ---

    def require_database_url(self) -> str:
        return self._require("database_url", "a PostgreSQL URL like postgresql://user@127.0.0.1:5432/db")

    def require_redis_url(self) -> str:
        return self._require("redis_url", "a Redis URL like redis://127.0.0.1:6379/0")

    def require_client_credentials(self) -> tuple[str, str]:
        client_id = self._require("spotify_client_id", "your Spotify app's client id")
        return client_id, self._require("spotify_client_secret", "your Spotify app's client secret")

    def require_api_tokens(self) -> tuple[str, ...]:
        return self._require("api_tokens", "bearer tokens for the API's callers, comma-separated")

    def require_token_keys(self) -> tuple[str, ...]:
        return self._require("spotify_token_keys", "keys made by `spotify-sync keys generate`, comma-separated")

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or self.require_redis_url()

    def _require(self, name: str, expected: str) -> Any:
        value = getattr(self, name)
        if not value:
            env = next(f.metadata["env"] for f in fields(self) if f.name == name)
            hint = ""
            if name in ("database_url", "redis_url"):
                hint = " (or run `spotify-sync services up` for embedded ones)"
            raise SettingsError(f"{env}: expected {expected}, but it is not set{hint}")
        return value

    def secrets(self) -> list[str]:
        """The secret values in force, for the log filter to mask: secret settings, and the
        passwords inside the service URLs."""
        found: list[str] = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"]:
                found.extend(value if isinstance(value, tuple) else [value] if value else [])
            elif isinstance(value, str) and "://" in value:
                password = urlsplit(value).password
                if password:
                    found.append(password)
        return found

    def __repr__(self) -> str:  # never print a secret by accident
        def shown(f) -> str:
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                return "'***'"
            return repr(without_password(value) if isinstance(value, str) else value)

        return "Settings(" + ", ".join(f"{f.name}={shown(f)}" for f in fields(self)) + ")"


def without_password(value: str) -> str:
    """A URL with its password replaced by ***; anything else as it is."""
    if "://" not in value:
        return value
    parts = urlsplit(value)
    if not parts.password:
        return value
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def default_state_dir() -> Path:
    """`.spotify-sync/` in the project checkout when run from one, else in the current folder."""
    project = Path(__file__).resolve().parent.parent
    if (project / "pyproject.toml").exists():
        return project / ".spotify-sync"
    return Path.cwd() / ".spotify-sync"


def known_env_vars() -> set[str]:
    """Every environment variable the settings read (deployment files are checked against it)."""
    return {f.metadata["env"] for f in fields(Settings)}
