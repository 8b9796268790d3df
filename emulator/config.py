"""EmulatorConfig: every knob of the emulator in one typed object.

The same object is built by the CLI, by tests (`EmulatorConfig(rate_limit=5)`) and is changed
while running through `POST /_emulator/config` (`with_changes`). It is plain data: it is
serialised to JSON to share it between emulator processes through the store.

Units are in the names (`_s` seconds). `None` for a limit means "no limit".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from emulator.faults import FaultRule, ForcedRule, parse_fault_spec

TIERS = ("extended", "dev-legacy", "dev-2026")
CONSENT_MODES = ("page", "auto")
SIX_MONTHS_S = 183 * 86400  # "six months after the user first authorised"


class ConfigError(ValueError):
    """A config value is invalid. The message names the field; the control API answers 400."""


@dataclass(frozen=True)
class EmulatorConfig:
    # --- access tier (spotify-platform.md, "Access tiers") ---
    tier: str = "extended"
    client_tiers: dict[str, str] = field(default_factory=dict)  # per client id override
    # Users that may use a development-mode app (the rest get 403 on user endpoints).
    user_caps: dict[str, int | None] = field(
        default_factory=lambda: {"extended": None, "dev-legacy": 25, "dev-2026": 5}
    )

    # --- rate limits ---
    rate_limit: int | None = 180  # admitted requests per rolling window, per client id
    rate_window_s: float = 30.0
    penalty_s: float = 0.0  # added to the wait for every call made while limited
    daily_quota: int | None = None  # admitted requests per quota period; None = off
    quota_period_s: float = 86400.0
    # Since July 2026 development-mode quota is per developer account: client id -> account.
    client_accounts: dict[str, str] = field(default_factory=dict)
    p_429_empty_body: float = 0.0  # share of rate-limit 429s sent with an empty body
    p_429_no_retry_after: float = 0.0  # share of rate-limit 429s sent without Retry-After

    # --- faults ---
    faults: tuple[FaultRule, ...] = ()
    forced: tuple[ForcedRule, ...] = ()  # "the next N calls answer ..."
    slow_s: float = 30.0  # how long a "slow" fault sleeps before answering
    fault_seed: int | None = None  # seed of the fault dice, for reproducible chaos runs

    # --- OAuth ---
    access_token_ttl_s: float = 3600.0
    refresh_token_ttl_s: float = float(SIX_MONTHS_S)  # counted from the first authorisation
    code_ttl_s: float = 600.0
    rotate_confidential_refresh: bool = False  # confidential refresh returns a new refresh token
    open_registration: bool = True  # any client id with a non-empty secret is accepted
    clients: dict[str, str] = field(default_factory=dict)  # fixed client id -> secret
    auth_error_style: str = "classic"  # "classic" messages or "newer" (Missing/invalid/expired)
    # /authorize: "page" shows a consent page unless the query asks for automatic consent
    # (emulated_user= or emulated_consent=); "auto" never shows it.
    consent: str = "page"
    app_names: dict[str, str] = field(default_factory=dict)  # client id -> name on the consent page

    # --- catalog and users ---
    catalog_size: int = 100_000
    catalog_seed: str = "spotify-sync"
    audio_features_share: float = 0.9
    search_index_max_tracks: int = 1_000_000  # search covers the first N tracks (memory bound)
    default_library_size: int = 200
    library_sizes: dict[str, int] = field(
        default_factory=lambda: {"demo": 2000, "alice": 500, "bob": 50, "empty": 0}
    )
    public_base_url: str | None = None  # for paging links; default: the request's base URL

    # --- clock (tests move it to cross window edges and token expiries) ---
    clock_offset_s: float = 0.0
    clock_frozen_at: float | None = None

    # --- process-level (not changeable while running) ---
    redis_url: str | None = None
    redis_prefix: str | None = None  # default "emulator:<random>"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.tier not in TIERS:
            raise ConfigError(f"tier must be one of {', '.join(TIERS)}")
        for cid, tier in self.client_tiers.items():
            if tier not in TIERS:
                raise ConfigError(f"client_tiers[{cid}] must be one of {', '.join(TIERS)}")
        if self.rate_limit is not None and self.rate_limit < 0:
            raise ConfigError("rate_limit must be >= 0 or null")
        if self.rate_window_s <= 0:
            raise ConfigError("rate_window_s must be > 0")
        if self.access_token_ttl_s < 1:
            raise ConfigError("access_token_ttl_s must be >= 1")
        if self.catalog_size < 1 or self.catalog_size > 100_000_000:
            raise ConfigError("catalog_size must be 1..100000000")
        if self.search_index_max_tracks < 0:
            raise ConfigError("search_index_max_tracks must be >= 0")
        if self.consent not in CONSENT_MODES:
            raise ConfigError(f"consent must be one of {', '.join(CONSENT_MODES)}")
        if self.auth_error_style not in ("classic", "newer"):
            raise ConfigError("auth_error_style must be classic or newer")
        for name in ("p_429_empty_body", "p_429_no_retry_after", "audio_features_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be within 0..1")

    def tier_for(self, client_id: str | None) -> str:
        if client_id is None:
            return self.tier
        return self.client_tiers.get(client_id, self.tier)

    def library_size(self, user: str) -> int:
        return min(self.library_sizes.get(user, self.default_library_size), self.catalog_size)

    def with_changes(self, changes: dict[str, Any]) -> EmulatorConfig:
        """A new config with `changes` (JSON values) applied; raises ConfigError."""
        known = {f.name for f in dataclasses.fields(self)}
        fixed = {"redis_url", "redis_prefix"}
        values: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known or name in fixed:
                raise ConfigError(f"unknown or fixed config field: {name}")
            values[name] = _coerce(name, value, getattr(self, name))
        try:
            return dataclasses.replace(self, **values)
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc)) from exc

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["faults"] = [r.to_json() for r in self.faults]
        out["forced"] = [r.to_json() for r in self.forced]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmulatorConfig:
        return cls().with_changes({k: v for k, v in data.items() if k not in ("redis_url", "redis_prefix")})


def _coerce(name: str, value: Any, current: Any) -> Any:
    """JSON value -> field value, merging dict fields the way a control call expects."""
    if name == "faults":
        if isinstance(value, str):
            return parse_fault_spec(value)
        return tuple(FaultRule.from_json(v) for v in value or [])
    if name == "forced":
        return tuple(ForcedRule.from_json(v) for v in value or [])
    if isinstance(current, dict) and isinstance(value, dict):
        return dict(value)  # replace, so a test can also remove entries
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false")
        return value
    if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value
