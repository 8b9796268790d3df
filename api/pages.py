"""The few HTML pages of the connect flow, rendered on the server: the connect page, the
callback's own result page, the refusal. Every value shown goes through `html.escape`; no script.

Stable hooks for browser tests: `#connect` (the Connect Spotify button), `#connected-as`,
`#sync-status` (`data-status` = the library sync's job status), `#sync-tracks`, `#refused`,
`#reason` (`data-reason` = the reason's code).
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi.responses import HTMLResponse

# What the browser is told for each reason a connection did not happen (codes go in ?error=).
REASONS = {
    "access_denied": "You did not allow spotify-sync to read your Spotify library.",
    "invalid_state": "This sign-in is unknown, was already used or has expired (after 10 minutes). "
                     "Nothing was stored; start again.",
    "missing_code": "Spotify sent no authorisation code back. Nothing was stored; start again.",
    "spotify_account_in_use": "This Spotify account is already connected to another user. Nothing was stored.",
    "spotify_refused": "Spotify did not accept the sign-in. Nothing was stored; start again.",
    "spotify_unavailable": "Spotify could not be reached. Nothing was stored; try again in a minute.",
    "unavailable": "The service is unavailable right now. Nothing was stored; try again in a minute.",
}
REFRESH_S = 2  # the connected page reloads itself this often while the library sync runs
_UNFINISHED = ("pending", "running")


def html_page(title: str, body: str, status: int = 200, *, refresh_s: int | None = None,
              form_targets: tuple[str, ...] = ()) -> HTMLResponse:
    """A whole page. The headers keep it out of caches, frames and Referer headers (the callback's URL
    carries a code), and let its forms go only to this origin and `form_targets` (Spotify's)."""
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    document = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                f"{refresh}<title>{escape(title)}</title>"
                "<style>body{font-family:system-ui,sans-serif;max-width:36em;margin:3em auto;padding:0 1em}"
                "button{font-size:1.1em;padding:.5em 1.2em;border-radius:2em;border:0;background:#1db954;color:#fff}"
                ".muted{color:#666}</style></head>"
                f"<body>{body}</body></html>")
    policy = ("default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'; "
              "form-action " + " ".join(("'self'", *form_targets)))
    return HTMLResponse(document, status_code=status, headers={
        "Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff", "Content-Security-Policy": policy})


def connect_form(link: dict[str, str], label: str) -> str:
    """The button that starts a sign-in (POST /connect/start with the signed link's fields)."""
    fields = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in link.items())
    button = f'<button id="connect" type="submit">{escape(label)}</button>'
    return f'<form method="post" action="/connect/start">{fields}{button}</form>'


def connect_page(user_id: str, link: dict[str, str], connection: dict[str, Any], refused: str | None,
                 form_targets: tuple[str, ...]) -> HTMLResponse:
    """For one user: "Connect Spotify", or "Connected as ..." with the library sync's progress
    (reloading itself while it runs), or the refusal (HTTP 400) when `refused` names a reason."""
    who = f'<p class="muted">for user <strong id="user">{escape(user_id)}</strong></p>'
    if refused is not None:
        text = REASONS.get(refused, REASONS["spotify_refused"])
        body = (f'<h1 id="refused">Spotify is not connected</h1>{who}'
                f'<p id="reason" data-reason="{escape(refused)}">{escape(text)}</p>'
                + connect_form(link, "Try again"))
        return html_page("Spotify is not connected", body, 400, form_targets=form_targets)
    if not connection["connected"]:
        body = (f"<h1>Connect Spotify</h1>{who}<p>spotify-sync will read your saved tracks "
                "(and your profile's name) to keep your library in step.</p>" + connect_form(link, "Connect Spotify"))
        return html_page("Connect Spotify", body, form_targets=form_targets)
    sync = connection.get("library_sync")
    warning = ('<p id="needs-reauth"><strong>Spotify no longer accepts this connection: connect again.</strong></p>'
               if connection["needs_reauth"] else "")
    body = (f'<h1>Connected as <span id="connected-as">{escape(connection["spotify_user_id"])}</span></h1>{who}'
            f"{warning}{_sync_section(sync)}" + connect_form(link, "Connect again"))
    running = sync is not None and sync["status"] in _UNFINISHED
    return html_page("Spotify connected", body, refresh_s=REFRESH_S if running else None, form_targets=form_targets)


def _sync_section(sync: dict[str, Any] | None) -> str:
    if sync is None:
        return '<p id="sync-status" data-status="none">No library sync has started yet.</p>'
    status = sync["status"]
    said = {"pending": "waiting for a worker", "running": "running", "completed": "done",
            "failed": "failed"}.get(status, status)
    tracks = f'<span id="sync-tracks">{int(sync["tracks"])}</span> saved tracks read'
    pages = f", {int(sync['pages'])} pages" if sync["pages"] else ""
    error = f' <span class="muted">({escape(sync["error"])})</span>' if status == "failed" and sync.get("error") else ""
    return (f'<p id="sync-status" data-status="{escape(status)}">Library sync: {escape(said)}{error}. '
            f"{tracks}{pages}.</p>")


def result_page(reason: str | None, spotify_user_id: str | None = None) -> HTMLResponse:
    """The callback's own answer when no return page is to be shown: connected (200) or the reason (400)."""
    if reason is None:
        body = (f'<h1>Connected as <span id="connected-as">{escape(spotify_user_id or "")}</span></h1>'
                "<p>You can close this window.</p>")
        return html_page("Spotify connected", body)
    text = REASONS.get(reason, REASONS["spotify_refused"])
    body = (f'<h1 id="refused">Spotify is not connected</h1>'
            f'<p id="reason" data-reason="{escape(reason)}">{escape(text)}</p>')
    return html_page("Spotify is not connected", body, 400)


def link_invalid_page() -> HTMLResponse:
    body = ('<h1 id="refused">This link does not work</h1><p id="reason" data-reason="invalid_link">'
            "It is not a connect link of this service, or it has expired. Ask for a new one.</p>")
    return html_page("Link not valid", body, 403)
