"""The connect page's signed links and the connect settings: pure logic, no I/O."""

from __future__ import annotations

import pytest

from api.connections import with_query
from api.links import LINK_LIFETIME_S, link_params, link_valid
from shared.crypto import generate_key
from shared.settings import Settings, SettingsError

NOW = 1_800_000_000.0


@pytest.fixture
def keys() -> tuple[str, ...]:
    return (generate_key(),)


def test_a_link_is_valid_for_its_user_until_it_expires(keys):
    link = link_params(keys, "user-1", NOW)
    assert link["expires"] == str(int(NOW) + LINK_LIFETIME_S)
    assert link_valid(keys, "user-1", link["expires"], link["sig"], NOW + LINK_LIFETIME_S - 1)
    assert not link_valid(keys, "user-1", link["expires"], link["sig"], NOW + LINK_LIFETIME_S)
    assert not link_valid(keys, "user-2", link["expires"], link["sig"], NOW)


def test_a_tampered_or_foreign_link_is_refused(keys):
    link = link_params(keys, "user-1", NOW)
    later = str(int(link["expires"]) + 3600)
    assert not link_valid(keys, "user-1", later, link["sig"], NOW)  # expiry pushed back
    flipped = link["sig"][:-1] + ("1" if link["sig"][-1] == "0" else "0")
    assert not link_valid(keys, "user-1", link["expires"], flipped, NOW)
    assert not link_valid((generate_key(),), "user-1", link["expires"], link["sig"], NOW)  # another deployment's
    for expires in (None, "", "1e9", "-5", "١٢٣", "9" * 13):
        assert not link_valid(keys, "user-1", expires, link["sig"], NOW)
    assert not link_valid(keys, "user-1", link["expires"], None, NOW)
    assert not link_valid(keys, None, link["expires"], link["sig"], NOW)


def test_links_survive_a_key_rotation(keys):
    link = link_params(keys, "user-1", NOW)
    rotated = (generate_key(), *keys)  # a new key first, the old one still accepted
    assert link_valid(rotated, "user-1", link["expires"], link["sig"], NOW)
    assert link_params(rotated, "user-1", NOW)["sig"] != link["sig"]


def test_the_signature_is_not_the_token_key(keys):
    link = link_params(keys, "user-1", NOW)
    assert keys[0] not in link["sig"] and len(link["sig"]) == 64


def test_return_urls_and_the_redirect_uri_are_checked_when_loaded():
    settings = Settings.from_env({"CONNECT_RETURN_URL": "https://app.example/a, http://127.0.0.1:3000/b?x=1",
                                  "API_REDIRECT_URI": "https://api.example/auth/spotify/callback"})
    assert settings.connect_return_urls == ("https://app.example/a", "http://127.0.0.1:3000/b?x=1")
    assert settings.api_redirect_uri == "https://api.example/auth/spotify/callback"
    for wrong in ("javascript:alert(1)", "/relative", "https://app.example/#frag", "ftp://x.example/"):
        with pytest.raises(SettingsError, match="^CONNECT_RETURN_URL: expected comma-separated http"):
            Settings.from_env({"CONNECT_RETURN_URL": wrong})
    for wrong in ("http://10.0.0.5/auth/spotify/callback", "http://localhost:8080/auth/spotify/callback"):
        with pytest.raises(SettingsError, match="^API_REDIRECT_URI: expected"):
            Settings.from_env({"API_REDIRECT_URI": wrong})


def test_the_outcome_is_added_to_the_return_page_query():
    assert with_query("https://app.example/a", {"connected": "1"}) == "https://app.example/a?connected=1"
    assert with_query("https://app.example/a?x=1", {"error": "access_denied"}) == \
        "https://app.example/a?x=1&error=access_denied"
