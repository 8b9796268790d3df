"""What the connect-flow tests share: the API's environment (its redirect URI on a chosen port, the
allowed return pages), the emulator's consent page driven over HTTP, and the secrets to look for."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import text

from tests.e2e.api_harness import free_port
from tests.e2e.pipeline_harness import Emulator, run_env

RETURN_URL = "https://app.example/settings/spotify"
OTHER_RETURN_URL = "https://app.example/onboarding?step=3"


class ApiPorts:
    """The ports of the API processes of a test, chosen before they start: the redirect URI names one."""

    def __init__(self, count: int = 2):
        self.ports = [free_port() for _ in range(count)]

    @property
    def redirect_uri(self) -> str:
        """Spotify sends the browser to the last API process."""
        return f"http://127.0.0.1:{self.ports[-1]}/auth/spotify/callback"


def connect_env(settings, emulator: Emulator, ports: ApiPorts, **overrides: str) -> dict[str, str]:
    return run_env(settings, emulator, API_REDIRECT_URI=ports.redirect_uri,
                   CONNECT_RETURN_URL=f"{RETURN_URL},{OTHER_RETURN_URL}", **overrides)


class _Form(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value") or ""


def consent(authorize_url: str, *, user: str, decision: str = "agree") -> str:
    """Open the emulator's consent page as a browser would, answer it, and return where it sends the
    browser (the API's callback URL with code or error, and the state)."""
    with httpx.Client(timeout=10) as http:
        page = http.get(authorize_url)
        assert page.status_code == 200 and 'id="consent"' in page.text, page.text[:500]
        fields = _Form(page.text).fields
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(authorize_url))
        answer = http.post(origin + "/authorize", data={"request_id": fields["request_id"], "user": user,
                                                       "decision": decision})
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def callback_path(url: str) -> str:
    """The callback URL as a path and query, to send to any API process."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def connection_rows(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            'SELECT "userId", "spotifyUserId", "accessToken", "refreshToken", scopes, status, "updatedAt" '
            "FROM spotify_connections ORDER BY \"userId\""))]


def library_jobs(engine, user_id: str) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            'SELECT id, status, "errorClass" FROM spotify_sync_jobs '
            "WHERE \"userId\" = :u AND \"jobType\" = 'user_library'"),
            {"u": user_id})]


def code_exchanges(emulator: Emulator, client_id: str) -> int:
    return sum(emulator.stats()["tokens"].get("authorization_code", {}).get(client_id, {}).values())


def assert_nowhere(secrets: dict[str, str], *texts: str) -> None:
    """None of the secrets (name -> value) appears in any of the texts (logs, response bodies)."""
    for name, value in secrets.items():
        assert value and len(value) >= 8, f"{name} was not captured"
        for i, body in enumerate(texts):
            assert value not in body, f"the {name} appears in text {i}: ...{body[max(0, body.find(value) - 80):][:200]}"


def redis_verifiers(redis_client, settings) -> list[str]:
    """The PKCE verifiers of the authorisations pending in Redis, unsealed with the settings' token
    keys (to check they never leak)."""
    import orjson

    from shared.crypto import TokenCipher

    cipher = TokenCipher(settings.require_token_keys())
    found = []
    for key in redis_client.scan_iter(match=f"{settings.redis_namespace}:oauth-state:*"):
        raw = redis_client.get(key)
        if raw:
            found.append(cipher.decrypt(orjson.loads(raw)["sealed_verifier"]))
    return found

