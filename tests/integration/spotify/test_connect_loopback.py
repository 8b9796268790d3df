"""`spotify-sync connect` on the loopback addresses Spotify allows: over [::1] against the emulator, and a
redirect URI that would listen on every interface refused before anything starts."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from pipeline.store.connections import load_tokens
from shared.crypto import TokenCipher
from tests.integration.spotify.conftest import pointed_at, settings_env

pytestmark = pytest.mark.integration


def free_ipv6_port() -> int:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        return sock.getsockname()[1]


def test_connect_over_ipv6_loopback(settings, clean_db, start_emulator):
    emulator = start_emulator()
    settings = pointed_at(settings, emulator).replace(spotify_redirect_uri=f"http://[::1]:{free_ipv6_port()}/callback")
    result = CliRunner().invoke(main, ["connect", "--user", "user-6", "--open-with-http", "--emulated-user", "alice",
                                       "--timeout", "30"], env=settings_env(settings))
    assert result.exit_code == 0, result.output
    assert "connected user user-6 to Spotify user alice" in result.output
    assert load_tokens(clean_db, TokenCipher(settings.spotify_token_keys), "user-6").spotify_user_id == "alice"


def test_a_redirect_uri_on_every_interface_is_refused_with_one_line(tmp_path):
    env = {**os.environ, "SPOTIFY_REDIRECT_URI": "http://0.0.0.0:8888/callback", "SPOTIFY_CLIENT_ID": "app",
           "SPOTIFY_CLIENT_SECRET": "s3cret", "SPOTIFY_SYNC_STATE_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "cli", "connect", "--user", "u1", "--timeout", "1"], check=False,
                            capture_output=True, text=True, timeout=60, env=env, cwd=Path(__file__).parents[3])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [(
        "spotify-sync: SPOTIFY_REDIRECT_URI: expected https, or http on a loopback address (127.0.0.1 or [::1]) "
        "such as http://127.0.0.1:8888/callback, got 'http://0.0.0.0:8888/callback'")]
