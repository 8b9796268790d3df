"""`spotify-sync demo`: the main job end to end (pipeline/demo.py does the work)."""

from __future__ import annotations

import click

from cli.common import WorkFailed, settings_of


@click.command()
@click.option("--tracks", default=10_000, show_default=True, type=click.IntRange(0, 1_000_000),
              help="How many catalog tracks to backfill (emulator only).")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64))
@click.pass_context
def demo(ctx: click.Context, tracks: int, workers: int, threads: int) -> None:
    """The main job end to end, then a summary; stops everything it started.

    Brings up what is missing (embedded PostgreSQL and Redis, the Spotify emulator), migrates,
    connects a demo user through OAuth, enqueues a backfill, the user's library and a popularity
    refresh, and runs workers until the work is done. With SPOTIFY_CLIENT_ID and
    SPOTIFY_CLIENT_SECRET set it runs against the real Spotify.
    """
    import demo as the_demo

    try:
        the_demo.run(settings_of(ctx), click.echo, the_demo.DemoPlan(tracks=tracks, workers=workers, threads=threads))
    except the_demo.DemoFailed as exc:
        raise WorkFailed(str(exc)) from None
