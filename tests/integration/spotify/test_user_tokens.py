"""A user's tokens: `spotify-sync connect` against the emulator, one refresh for 20 threads in 3
processes, the rotated refresh token stored encrypted, and a revoked grant ends in needs_reauth."""

import multiprocessing

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from cli import main
from pipeline.errors import InvalidGrant
from pipeline.store.connections import load_tokens
from pipeline.wiring import build_client
from shared.crypto import TokenCipher
from shared.models import SpotifyConnection, User
from tests.integration.spotify.conftest import pointed_at, settings_env
from tests.integration.spotify.fleet import user_calls

pytestmark = pytest.mark.integration


def connect(settings, user_id: str, emulated_user: str) -> str:
    result = CliRunner().invoke(main, ["connect", "--user", user_id, "--open-with-http",
                                       "--emulated-user", emulated_user, "--timeout", "30"],
                                env=settings_env(settings))
    assert result.exit_code == 0, result.output
    return result.output


def test_connect_stores_the_user_and_encrypted_tokens(settings, clean_db, start_emulator):
    emulator = start_emulator()
    settings = pointed_at(settings, emulator)
    output = connect(settings, "user-1", "alice")
    assert "Open this URL" in output and "connected user user-1 to Spotify user alice" in output
    cipher = TokenCipher(settings.spotify_token_keys)
    tokens = load_tokens(clean_db, cipher, "user-1")
    assert (tokens.spotify_user_id, tokens.status, "user-library-read" in tokens.scopes) == ("alice", "active", True)
    with clean_db.begin() as session:
        row = session.scalars(select(SpotifyConnection)).one()
        assert session.get(User, "user-1") is not None
    assert tokens.access_token not in row.access_token and tokens.refresh_token not in row.refresh_token
    assert emulator.stats()["tokens"]["authorization_code"][settings.spotify_client_id] == {"alice": 1}
    page = build_client(settings, engine=clean_db).for_user("user-1").saved_tracks(0, 50)
    assert len(page.items) == 50 and page.total == 500


def test_twenty_threads_in_three_processes_refresh_once_and_a_revoked_grant_needs_the_user(
        settings, clean_db, start_emulator):
    emulator = start_emulator(rate_limit=None)
    settings = pointed_at(settings, emulator)
    connect(settings, "user-2", "bob")
    cipher = TokenCipher(settings.spotify_token_keys)
    before = load_tokens(clean_db, cipher, "user-2")

    # An hour goes by: the access token has expired, for Spotify and for us.
    emulator.post("/_emulator/clock", {"advance_s": 3601})
    with clean_db.begin() as conn:
        conn.execute(text("""UPDATE spotify_connections SET "tokenExpiresAt" = now() - interval '1 minute'"""))

    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=user_calls, args=(settings, "user-2", n, start, results)) for n in (7, 7, 6)]
    [p.start() for p in processes]
    start.set()
    outcomes = [o for _ in processes for o in results.get(timeout=90)]
    [p.join(30) for p in processes]

    assert outcomes == ["ok:50"] * 20
    client_id = settings.spotify_client_id
    assert emulator.stats()["tokens"]["refresh_token"][client_id] == {"bob": 1}
    after = load_tokens(clean_db, cipher, "user-2")
    assert after.refresh_token != before.refresh_token  # PKCE refresh tokens rotate: the new one is kept
    assert after.access_token != before.access_token and after.status == "active"
    with clean_db.begin() as session:
        row = session.scalars(select(SpotifyConnection)).one()
    assert after.refresh_token not in row.refresh_token and cipher.decrypt(row.refresh_token) == after.refresh_token

    # The user revokes the app: the next call learns it, marks the connection, and stops asking.
    emulator.post("/_emulator/revoke", {"user": "bob", "client_id": client_id})
    client = build_client(settings, engine=clean_db)
    with pytest.raises(InvalidGrant) as caught:
        client.for_user("user-2").saved_tracks(0, 50)
    assert not caught.value.transient
    assert load_tokens(clean_db, cipher, "user-2").status == "needs_reauth"
    token_requests, api_requests = emulator.requests("/api/token"), emulator.api_requests()
    for fresh in (client, build_client(settings, engine=clean_db)):
        for _ in range(3):
            with pytest.raises(InvalidGrant):
                fresh.for_user("user-2").me()
    assert (emulator.requests("/api/token"), emulator.api_requests()) == (token_requests, api_requests)
    assert emulator.requests("/api/token", "400") == 1  # the one invalid_grant
