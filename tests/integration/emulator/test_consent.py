"""The consent page over real sockets: shown unless automatic consent is asked for, its form
posts back, Agree gives a working code, Cancel gives access_denied, everything is escaped."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from emulator.config import EmulatorConfig

from .conftest import REDIRECT_URI, new_client_id, s256

VOID = {"input", "meta", "br", "img", "link", "hr"}


class Page(HTMLParser):
    """The elements a browser test would find: by id, the form's fields, the scope items."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.text_of: dict[str, str] = {}
        self.form: dict[str, str] | None = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}  # id -> (name, value)
        self.scopes: list[str] = []
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = {k: v or "" for k, v in attrs}
        if "id" in attrs:
            self.by_id[attrs["id"]] = {"tag": tag, **attrs}
        if tag not in VOID:  # void elements have no end tag to pop them
            self._open.append(attrs.get("id", ""))
        if tag == "form":
            self.form = attrs
        elif tag == "input":
            self.fields[attrs["name"]] = attrs.get("value", "")
        elif tag == "button":
            self.buttons[attrs["id"]] = (attrs["name"], attrs["value"])
        elif tag == "li" and "data-scope" in attrs:
            self.scopes.append(attrs["data-scope"])

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._open and self._open[-1]:
            self.text_of[self._open[-1]] = self.text_of.get(self._open[-1], "") + data


def open_page(emu, client_id="consent-app", scope="user-library-read user-read-email", **extra):
    params = {"client_id": client_id, "response_type": "code", "redirect_uri": REDIRECT_URI,
              "state": "st-42", "scope": scope, **extra}
    response = emu.http.get("/authorize", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return Page(response.text)


def submit(emu, page: Page, button: str, **fields):
    name, value = page.buttons[button]
    assert page.form is not None and page.form["method"] == "post"
    return emu.http.post(page.form["action"], data={**page.fields, **fields, name: value})


def test_authorize_shows_the_consent_page_with_app_and_scopes(emu):
    page = open_page(emu)
    assert page.text_of["app-name"] == "consent-app" and page.text_of["user-name"] == "demo"
    assert page.text_of["agree"] == "Agree" and page.text_of["cancel"] == "Cancel"
    assert page.scopes == ["user-library-read", "user-read-email"]
    assert {"agree", "cancel", "user", "consent"} <= set(page.by_id)
    assert page.by_id["agree"]["tag"] == "button" and page.by_id["cancel"]["tag"] == "button"
    assert set(page.fields) == {"request_id", "user"}  # nothing of the request travels in the form
    assert emu.stats()["requests"]["/authorize"] == {"200": 1}


def test_agree_redirects_with_a_code_that_exchanges_for_the_chosen_user(emu):
    client_id = new_client_id()
    verifier = "v" * 64
    page = open_page(emu, client_id, code_challenge=s256(verifier), code_challenge_method="S256")
    back = submit(emu, page, "agree", user="alice")
    assert back.status_code == 303
    location = urlsplit(back.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = parse_qs(location.query)
    assert query["state"] == ["st-42"] and len(query["code"][0]) > 20
    tokens = emu.http.post("/api/token", data={"grant_type": "authorization_code", "code": query["code"][0],
                                               "redirect_uri": REDIRECT_URI, "client_id": client_id,
                                               "code_verifier": verifier})
    assert tokens.status_code == 200, tokens.text
    me = emu.get("/v1/me", tokens.json()["access_token"]).json()
    assert me["id"] == "alice"
    assert submit(emu, page, "agree").status_code == 400  # the held request is single use


def test_cancel_redirects_with_access_denied_and_state(emu):
    back = submit(emu, open_page(emu), "cancel")
    assert back.status_code == 303
    query = parse_qs(urlsplit(back.headers["location"]).query)
    assert query == {"error": ["access_denied"], "state": ["st-42"]}


def test_bad_answers_get_an_error_page(emu):
    page = open_page(emu)
    bogus = emu.http.post("/authorize", data={"request_id": "nope", "decision": "agree"})
    assert bogus.status_code == 400 and "unknown, expired or already answered" in bogus.text
    assert emu.http.post("/authorize", data={"request_id": page.fields["request_id"]}).status_code == 400
    bad_user = parse_qs(urlsplit(submit(emu, page, "agree", user="<b>x</b>").headers["location"]).query)
    assert bad_user["error"] == ["invalid_request"] and "code" not in bad_user


def test_the_request_expires_with_the_code_ttl(emu):
    emu.configure(code_ttl_s=60)
    emu.clock(freeze=True)
    page = open_page(emu)
    emu.clock(advance_s=61)
    assert submit(emu, page, "agree").status_code == 400


def test_errors_before_consent_go_straight_back_or_to_a_400(emu):
    bad_scope = emu.http.get("/authorize", params={"client_id": "a", "response_type": "code", "state": "s",
                                                   "redirect_uri": REDIRECT_URI, "scope": "no-such-scope"})
    assert bad_scope.status_code == 303 and "error=invalid_scope" in bad_scope.headers["location"]
    insecure = emu.http.get("/authorize", params={"client_id": "a", "response_type": "code",
                                                  "redirect_uri": "http://localhost:3000/cb"})
    assert insecure.status_code == 400 and insecure.text == "INVALID_CLIENT: Insecure redirect URI"


@pytest.mark.parametrize("emu_config", [EmulatorConfig(
    catalog_size=1000, app_names={"evil": '<script>alert("x")</script> & Co'})])
def test_everything_rendered_is_escaped(emu):
    response = emu.http.get("/authorize", params={"client_id": "evil", "response_type": "code",
                                                  "redirect_uri": REDIRECT_URI, "state": '"><script>1</script>'})
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in response.text
    assert Page(response.text).text_of["app-name"] == '<script>alert("x")</script> & Co'


def test_automatic_consent_is_kept_for_the_cli_and_tests(emu):
    auto_user = emu.authorize("cli-app", user="bob")  # emulated_user=bob, as connect --emulated-user sends
    assert auto_user.status_code == 303 and "code=" in auto_user.headers["location"]
    denied = emu.http.get("/authorize", params={"client_id": "cli-app", "response_type": "code",
                                                "redirect_uri": REDIRECT_URI, "emulated_consent": "deny"})
    assert denied.status_code == 303 and "error=access_denied" in denied.headers["location"]
    emu.configure(consent="auto")
    plain = emu.http.get("/authorize", params={"client_id": "cli-app", "response_type": "code",
                                               "redirect_uri": REDIRECT_URI, "state": "s"})
    assert plain.status_code == 303 and "code=" in plain.headers["location"]
    assert emu.http.post("/_emulator/config", json={"consent": "maybe"}).status_code == 400
