"""`spotify-sync connect`: connect a user's Spotify account (OAuth with PKCE)."""

from __future__ import annotations

import click

from cli.common import UsageProblem, WorkFailed, database, redis_client, settings_of


@click.command("connect")
@click.option("--user", "user_id", required=True, help="The application's user id (created when missing).")
@click.option("--open-with-http", is_flag=True,
              help="Follow the authorize URL with an HTTP client instead of a browser (the emulator).")
@click.option("--scope", "scopes", multiple=True, help="A scope to ask for (repeatable); default: library and profile.")
@click.option("--emulated-user", default=None, help="With the emulator: which of its users authorises.")
@click.option("--timeout", "timeout_s", default=300, show_default=True, type=click.IntRange(1, 3600),
              help="Seconds to wait for the redirect.")
@click.pass_context
def connect(ctx: click.Context, user_id: str, open_with_http: bool, scopes: tuple[str, ...],
            emulated_user: str | None, timeout_s: int) -> None:
    """Connect USER's Spotify account: authorisation code with PKCE, tokens stored encrypted.

    Prints the URL to open; a server on SPOTIFY_REDIRECT_URI (http on 127.0.0.1 or [::1]) waits for the
    redirect that carries this flow's state, ignoring (400) any other request.
    """
    import httpx

    from pipeline.auth.callback_server import CallbackServer
    from pipeline.auth.flow import DEFAULT_SCOPES, authorize_url, exchange_code, new_pkce, new_state, store_connection
    from pipeline.errors import SpotifyError
    from pipeline.spotify.http import shared_http_client
    from pipeline.wiring import build_client, token_endpoint
    from shared.crypto import TokenCipher

    settings = settings_of(ctx)
    client_id, _ = settings.require_client_credentials()
    cipher = TokenCipher(settings.require_token_keys())
    scopes = scopes or DEFAULT_SCOPES
    pkce, state = new_pkce(), new_state()
    extra = {"emulated_user": emulated_user} if emulated_user else None
    url = authorize_url(settings.spotify_accounts_base_url, client_id, settings.spotify_redirect_uri, state,
                        pkce.challenge, scopes, extra)
    try:
        server = CallbackServer(settings.spotify_redirect_uri, expected_state=state)
    except ValueError as exc:
        raise UsageProblem(f"SPOTIFY_REDIRECT_URI: expected {exc}") from None
    except OSError as exc:
        raise UsageProblem(f"cannot listen on {settings.spotify_redirect_uri}: {exc.strerror}") from None
    with server, httpx.Client(timeout=30) as http:
        click.echo(f"Open this URL to connect user {user_id}:\n{url}")
        if open_with_http:
            try:
                http.get(url, follow_redirects=True)
            except httpx.HTTPError as exc:
                raise WorkFailed(f"following the authorize URL failed: {exc.__class__.__name__}") from None
        params = server.wait(timeout_s)
    if params is None:
        raise WorkFailed(f"no redirect came back within {timeout_s}s")
    if "code" not in params:  # the server accepts only a redirect with our state and a code or an error
        raise WorkFailed(f"Spotify refused: {params['error']}")
    with database(settings) as engine, redis_client(settings) as redis:
        try:
            grant = exchange_code(token_endpoint(settings, shared_http_client(settings)), params["code"], pkce.verifier,
                                  settings.spotify_redirect_uri)
            spotify = build_client(settings, redis, engine)
            me = spotify.with_access_token(grant.access_token).me()
            store_connection(engine, cipher, user_id, me.id, grant, tuple(scopes))
        except SpotifyError as exc:
            raise WorkFailed(f"connecting failed: {exc}") from None
    click.echo(f"connected user {user_id} to Spotify user {me.id} (scopes: {' '.join(grant.scopes or scopes)})")
