"""Settings: every value parsed at load, one clear line per bad value, secrets never echoed."""

from pathlib import Path

import pytest

from shared.crypto import generate_key
from shared.settings import Rate, Settings, SettingsError, known_env_vars, parse_duration_s, parse_rate

NO_STATE = {"SPOTIFY_SYNC_STATE_DIR": "/nonexistent/spotify-sync-state"}


def load(**env: str) -> Settings:
    return Settings.from_env({**NO_STATE, **env})


def test_defaults_follow_the_seed_and_the_platform():
    settings = load()
    assert settings.spotify_rate_limit == Rate(100, 60)
    assert settings.spotify_redirect_uri == "http://127.0.0.1:8888/callback"
    assert settings.spotify_api_base_url == "https://api.spotify.com/v1"
    assert settings.spotify_accounts_base_url == "https://accounts.spotify.com"
    assert (settings.track_ttl_s, settings.popularity_ttl_s) == (86400, 3600)
    assert settings.log_format == "text" and settings.log_level == "INFO"
    assert settings.database_url is None and settings.state_dir == Path("/nonexistent/spotify-sync-state")


@pytest.mark.parametrize(
    "raw, expected",
    [("100/60s", Rate(100, 60)), ("50/10s", Rate(50, 10)), ("300/1m", Rate(300, 60)), ("7/30", Rate(7, 30))],
)
def test_rates_parse(raw, expected):
    assert parse_rate(raw) == expected


@pytest.mark.parametrize("raw", ["fast", "100", "/60s", "0/60s", "100/0s", "100/60x", "-1/60s"])
def test_bad_rates_are_refused(raw):
    with pytest.raises(ValueError):
        parse_rate(raw)


def test_durations():
    assert [parse_duration_s(x) for x in ("90", "90s", "15m", "24h", "2d")] == [90, 90, 900, 86400, 172800]
    with pytest.raises(ValueError):
        parse_duration_s("a day")


def test_a_malformed_value_names_the_variable_and_what_is_expected():
    with pytest.raises(SettingsError) as caught:
        load(SPOTIFY_RATE_LIMIT="fast")
    assert str(caught.value) == (
        "SPOTIFY_RATE_LIMIT: expected a rate like 100/60s (requests per window), got 'fast'"
    )


@pytest.mark.parametrize(
    "env, value, fragment",
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL: expected a URL starting with postgresql://"),
        ("REDIS_URL", "127.0.0.1:6379", "REDIS_URL: expected a URL starting with redis://"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT: expected one of text, json"),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: expected one of trace"),
        ("TRACK_TTL", "tomorrow", "TRACK_TTL: expected a duration"),
        ("SPOTIFY_REDIRECT_URI", "http://localhost:8888/callback", "Spotify refuses 'localhost'"),
        ("SPOTIFY_READ_TIMEOUT", "-3", "SPOTIFY_READ_TIMEOUT: expected a number of seconds above zero"),
    ],
)
def test_each_malformed_value_gets_one_line(env, value, fragment):
    with pytest.raises(SettingsError) as caught:
        load(**{env: value})
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_token_key_is_refused_without_echoing_any_key():
    good = generate_key()
    with pytest.raises(SettingsError) as caught:
        load(SPOTIFY_TOKEN_KEYS=f"{good},not-a-key-at-all")
    message = str(caught.value)
    assert "SPOTIFY_TOKEN_KEYS" in message and "key 2 is not one" in message
    assert good not in message and "not-a-key-at-all" not in message


def test_missing_values_fail_only_where_needed():
    settings = load()
    with pytest.raises(SettingsError, match=r"^DATABASE_URL: expected .* not set .*services up"):
        settings.require_database_url()
    with pytest.raises(SettingsError, match="^SPOTIFY_CLIENT_SECRET: expected"):
        load(SPOTIFY_CLIENT_ID="abc").require_client_credentials()


def test_secrets_are_listed_for_masking_and_hidden_from_repr():
    key = generate_key()
    settings = load(SPOTIFY_CLIENT_SECRET="s3cr3t-value", SPOTIFY_TOKEN_KEYS=key)
    assert set(settings.secrets()) == {"s3cr3t-value", key}
    assert "s3cr3t-value" not in repr(settings) and key not in repr(settings)


def test_embedded_services_fill_missing_urls(tmp_path, monkeypatch):
    from shared import services

    recorded = {"database_url": "postgresql://postgres:@/postgres?host=/x", "redis_url": "unix:///x/redis.sock"}
    monkeypatch.setattr(services, "read_state", lambda state_dir: recorded if state_dir == tmp_path else {})
    settings = Settings.from_env({"SPOTIFY_SYNC_STATE_DIR": str(tmp_path)})
    assert (settings.database_url, settings.redis_url) == (recorded["database_url"], recorded["redis_url"])
    explicit = Settings.from_env({"SPOTIFY_SYNC_STATE_DIR": str(tmp_path), "DATABASE_URL": "postgresql://h/db"})
    assert explicit.database_url == "postgresql://h/db"


def test_known_env_vars_cover_the_documented_ones():
    assert {"DATABASE_URL", "REDIS_URL", "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI",
            "SPOTIFY_API_BASE_URL", "SPOTIFY_ACCOUNTS_BASE_URL", "SPOTIFY_RATE_LIMIT", "SPOTIFY_TOKEN_KEYS",
            "LOG_LEVEL", "LOG_FORMAT", "TRACK_TTL", "POPULARITY_TTL"} <= known_env_vars()


def test_settings_survive_the_trip_through_a_child_environment():
    key = generate_key()
    settings = load(DATABASE_URL="postgresql://h/db", SPOTIFY_RATE_LIMIT="50/10s", SPOTIFY_TOKEN_KEYS=key,
                    TRACK_TTL="2h", SPOTIFY_READ_TIMEOUT="2.5", LOG_FORMAT="json")
    assert Settings.from_env(settings.as_environ()) == settings


def test_passwords_in_service_urls_are_never_shown_and_are_masked_in_logs():
    with pytest.raises(SettingsError) as caught:
        load(DATABASE_URL="mysql://app:hunter2secret@db/music")
    assert "hunter2secret" not in str(caught.value) and "app:***@db" in str(caught.value)
    settings = load(DATABASE_URL="postgresql://app:hunter2secret@db/music", REDIS_URL="redis://:r3dispass@cache:6379/0")
    assert "hunter2secret" not in repr(settings) and "r3dispass" not in repr(settings)
    assert {"hunter2secret", "r3dispass"} <= set(settings.secrets())
    assert settings.database_url == "postgresql://app:hunter2secret@db/music"  # the value itself is intact


@pytest.mark.parametrize(
    "env, value, fragment",
    [
        # values float()/int()/str.isdigit() accept but that break later
        ("SPOTIFY_READ_TIMEOUT", "nan", "SPOTIFY_READ_TIMEOUT: expected a number of seconds above zero"),
        ("SPOTIFY_CONNECT_TIMEOUT", "inf", "SPOTIFY_CONNECT_TIMEOUT: expected a number of seconds above zero"),
        ("SPOTIFY_RETRY_BUDGET", "1e9", "SPOTIFY_RETRY_BUDGET: expected a number of seconds above zero"),
        ("SPOTIFY_READ_TIMEOUT", "١٠", "SPOTIFY_READ_TIMEOUT: expected a number of seconds"),
        ("SPOTIFY_READ_TIMEOUT", "1_0", "SPOTIFY_READ_TIMEOUT: expected a number of seconds"),
        ("JOB_LEASE", "0", "JOB_LEASE: expected a duration above zero"),
        ("SPOTIFY_RETRY_AFTER_DEFAULT", "0s", "SPOTIFY_RETRY_AFTER_DEFAULT: expected a duration above zero"),
        ("SPOTIFY_CAPABILITY_RECHECK", "0", "SPOTIFY_CAPABILITY_RECHECK: expected a duration above zero"),
        ("TRACK_TTL", "99999999999999999999d", "TRACK_TTL: expected a duration like 30s, 15m, 24h or 2d, at most"),
        ("TRACK_TTL", "²h", "TRACK_TTL: expected a duration"),
        ("JOB_MAX_RETRIES", "²", "JOB_MAX_RETRIES: expected a whole number"),
        ("JOB_MAX_RETRIES", "100000", "JOB_MAX_RETRIES: expected a whole number from 0 to 100"),
        ("SPOTIFY_RATE_LIMIT", "١٠٠/60s", "SPOTIFY_RATE_LIMIT: expected a rate"),
        ("DATABASE_URL", "postgresql://h:notaport/db", "DATABASE_URL: expected a URL starting with postgresql://"),
        ("REDIS_URL", "redis://cache:99999/0", "REDIS_URL: expected a URL starting with redis://"),
        ("SPOTIFY_API_BASE_URL", "http://api:x/v1", "SPOTIFY_API_BASE_URL: expected a URL"),
    ],
)
def test_values_that_would_break_later_are_refused_at_load(env, value, fragment):
    with pytest.raises(SettingsError) as caught:
        load(**{env: value})
    assert str(caught.value).startswith(fragment) and "\n" not in str(caught.value)


def test_a_bad_port_is_named_without_the_password():
    with pytest.raises(SettingsError) as caught:
        load(DATABASE_URL="postgresql://app:hunter2secret@h:notaport/db")
    message = str(caught.value)
    assert "port 'notaport' is not a number from 1 to 65535" in message
    assert "hunter2secret" not in message and "app:***@h:notaport" in message


def test_sound_edge_values_still_load():
    settings = load(TRACK_TTL="0", POPULARITY_TTL="0s", JOB_MAX_RETRIES="0", JOB_LEASE="1", SPOTIFY_READ_TIMEOUT="0.5",
                    SPOTIFY_CONNECT_TIMEOUT=".5", DATABASE_URL="postgresql://h:5433/db", REDIS_URL="unix:///tmp/r.sock")
    assert (settings.track_ttl_s, settings.popularity_ttl_s, settings.job_max_retries, settings.job_lease_s) == (0, 0, 0, 1)
    assert (settings.read_timeout_s, settings.connect_timeout_s) == (0.5, 0.5)
