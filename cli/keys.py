"""`spotify-sync keys`: generate and rotate the keys stored tokens are encrypted with."""

from __future__ import annotations

import click

from cli.common import database, settings_of


@click.group()
def keys() -> None:
    """Encryption keys for stored tokens (SPOTIFY_TOKEN_KEYS)."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key. Put it first in SPOTIFY_TOKEN_KEYS to encrypt with it."""
    from shared.crypto import generate_key

    click.echo(generate_key())


@keys.command("rotate")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def keys_rotate(ctx: click.Context, batch_size: int) -> None:
    """Re-encrypt every stored token under the first key. Safe to interrupt and run again."""
    from pipeline.store.connections import rotate_keys
    from shared.crypto import TokenCipher

    settings = settings_of(ctx)
    cipher = TokenCipher(settings.require_token_keys())
    with database(settings) as engine:
        rewritten = rotate_keys(engine, cipher, batch_size=batch_size)
    click.echo(f"re-encrypted {rewritten} connection(s) under the first key; the other keys may now be dropped")
