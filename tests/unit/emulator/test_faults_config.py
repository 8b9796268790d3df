"""Fault specs, forced rules and the config object."""

from __future__ import annotations

import pytest

from emulator.config import ConfigError, EmulatorConfig
from emulator.faults import FaultDice, FaultRule, FaultSpecError, ForcedRule, parse_fault_spec


def test_parse_fault_spec():
    rules = parse_fault_spec("503:0.05, slow:0.01@/v1/tracks,drop:1@/api/token")
    assert rules == (
        FaultRule("503", 0.05), FaultRule("slow", 0.01, "/v1/tracks"), FaultRule("drop", 1.0, "/api/token"),
    )
    assert parse_fault_spec("") == ()
    for bad in ("418:0.1", "500:1.5", "500", "500:x"):
        with pytest.raises(FaultSpecError):
            parse_fault_spec(bad)


def test_rules_match_endpoints():
    anywhere = FaultRule("500", 1.0)
    assert anywhere.matches("/v1/tracks") and not anywhere.matches("/api/token")
    assert FaultRule("500", 1.0, "/api/token").matches("/api/token")
    assert not FaultRule("500", 1.0, "/v1/tracks").matches("/v1/tracks/{id}")
    forced = ForcedRule(id="x", kind="429", client_id="c")
    assert forced.matches("/v1/me", "c") and not forced.matches("/v1/me", "d")


def test_dice_is_reproducible_with_a_seed():
    rules = (FaultRule("503", 0.5),)
    one, two = FaultDice(3), FaultDice(3)
    rolls = [one.roll(rules, "/v1/me") for _ in range(50)]
    assert rolls == [two.roll(rules, "/v1/me") for _ in range(50)]
    assert set(rolls) == {"503", None}


def test_config_changes_validate_and_round_trip():
    config = EmulatorConfig().with_changes({"tier": "dev-2026", "faults": "500:0.1", "access_token_ttl_s": 5})
    assert config.tier == "dev-2026" and config.faults == (FaultRule("500", 0.1),)
    assert config.access_token_ttl_s == 5.0
    assert EmulatorConfig.from_json(config.to_json()) == config
    for bad in ({"tier": "x"}, {"rate_window_s": 0}, {"p_429_empty_body": 2}, {"nope": 1}, {"redis_url": "x"}):
        with pytest.raises(ConfigError):
            EmulatorConfig().with_changes(bad)


def test_tier_per_client_and_library_sizes():
    config = EmulatorConfig(client_tiers={"a": "dev-2026"}, catalog_size=100)
    assert config.tier_for("a") == "dev-2026" and config.tier_for("b") == "extended"
    assert config.library_size("demo") == 100 and config.library_size("bob") == 50
