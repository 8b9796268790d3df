"""The consent page /authorize shows, like Spotify's: the app's name, what it asks for, Agree / Cancel.

Stable hooks for a browser test: `#app-name`, `#user-name`, `#scopes li[data-scope]`, the form
`#consent` with the text field `#user` (name `user`), and the buttons `#agree` and `#cancel`
(name `decision`, values `agree` / `cancel`). The form posts back to /authorize with the held
request's single-use id (`request_id`) and nothing else of the request, so the page cannot be
used to change what was asked. Everything rendered is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from emulator.oauth import DEFAULT_USER, AuthorizationRequest

# What Spotify's page says for each scope (its wording, shortened); others show the scope itself.
SCOPE_TEXT = {
    "user-library-read": "Access your saved content",
    "user-library-modify": "Manage your saved content",
    "user-read-private": "Access your subscription details",
    "user-read-email": "Get your real email address",
    "playlist-read-private": "Access your private playlists",
    "playlist-modify-public": "Manage your public playlists",
    "playlist-modify-private": "Manage your private playlists",
    "user-top-read": "Read your top artists and content",
    "user-read-recently-played": "Access your recently played items",
    "user-follow-read": "Access your followers and who you are following",
    "user-read-playback-state": "Read your currently playing content and Spotify Connect devices information",
    "streaming": "Play content and control playback on your other devices",
}
_STYLE = (
    "body{background:#121212;color:#fff;font-family:sans-serif;display:flex;justify-content:center}"
    "main{max-width:28rem;margin-top:4rem}button{border-radius:2rem;padding:.8rem 2rem;font-weight:bold;"
    "border:0;margin:.5rem .5rem 0 0}#agree{background:#1ed760}#cancel{background:transparent;color:#fff;"
    "border:1px solid #888}li{margin:.4rem 0}"
)


def consent_page(request: AuthorizationRequest, request_id: str, app_name: str) -> str:
    """The page's HTML for a held request."""
    app, e = escape(app_name), escape
    scopes = "".join(
        f'<li data-scope="{e(s)}">{e(SCOPE_TEXT.get(s, s))}</li>' for s in request.scopes
    ) or '<li data-scope="">Access your public profile</li>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Authorize {app} - Spotify (emulated)</title><style>{_STYLE}</style></head><body><main>"
        f'<p>Spotify (emulated)</p><h1 id="app-name">{app}</h1>'
        f'<p>wants to connect to your account, logged in as <strong id="user-name">{e(DEFAULT_USER)}</strong>.'
        f'</p><h2>It will be able to:</h2><ul id="scopes">{scopes}</ul>'
        '<form id="consent" method="post" action="/authorize">'
        f'<input type="hidden" name="request_id" value="{e(request_id)}">'
        f'<p><label for="user">Log in as</label> <input id="user" name="user" value="{e(DEFAULT_USER)}"></p>'
        '<button id="agree" type="submit" name="decision" value="agree">Agree</button>'
        '<button id="cancel" type="submit" name="decision" value="cancel">Cancel</button>'
        "</form></main></body></html>"
    )


def error_page(message: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Error - Spotify (emulated)</title>'
        '</head><body><main><h1>Oops! Something went wrong</h1>'
        f'<p id="error">{escape(message)}</p></main></body></html>'
    )
