"""`spotify-sync enqueue`: the producers (pipeline/producers.py) that create jobs."""

from __future__ import annotations

from typing import BinaryIO

import click

from cli.common import UsageProblem, WorkFailed, database, job_sender, settings_of
from shared.jobtypes import BY_NAME


def _progress(quiet: bool):
    def show(stage: str, done: int, total: int) -> None:
        if not quiet:
            click.echo(f"  {stage}: {done:,}" + (f" / {total:,}" if total else ""), err=True)

    return show


@click.group()
def enqueue() -> None:
    """Create jobs (rows first, then one message each carrying the job id)."""


@enqueue.command(BY_NAME["track_sync"].cli_label)
@click.argument("ids", nargs=-1)
@click.option("--ids-file", metavar="FILE", help="One id, URI or URL per line (UTF-8); '-' reads stdin.")
@click.option("--force", is_flag=True, help="Fetch ids synced within TRACK_TTL too.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.pass_context
def enqueue_track_sync(ctx: click.Context, ids: tuple[str, ...], ids_file: str | None, force: bool,
                       quiet: bool) -> None:
    """Sync tracks: IDS as arguments and/or --ids-file, in jobs of 100.

    Ids fresh in the cache (synced within TRACK_TTL), ids Spotify answered null for within
    TRACK_TTL, and duplicates are left out unless --force.
    Bad lines are reported with their line numbers and the good ones are enqueued; the exit code
    is then 1. With no usable id at all: exit 2.
    """
    from contextlib import ExitStack
    from itertools import chain

    from pipeline.idfile import IdReader
    from pipeline.producers import enqueue_track_sync as produce

    if not ids and ids_file is None:
        raise UsageProblem("give track ids as arguments or with --ids-file FILE (or - for stdin)")
    settings = settings_of(ctx)
    readers = [IdReader(ids, label="argument")] if ids else []
    with ExitStack() as stack:
        if ids_file is not None:
            stream, name = _open_ids_file(ids_file)
            stack.enter_context(stream)
            readers.append(IdReader(stream, label=f"{name} line"))
        engine = stack.enter_context(database(settings))
        _, send = stack.enter_context(job_sender(settings))
        result = produce(engine, send, chain.from_iterable(readers), force=force, track_ttl_s=settings.track_ttl_s,
                         description="track-sync" + (" --force" if force else ""), progress=_progress(quiet))
    bad = [line for reader in readers for line in reader.bad]
    bad_count = sum(reader.bad_count for reader in readers)
    for line in bad:
        click.echo(f"spotify-sync: {line.where}: {line.reason}: {line.text!r}", err=True)
    if bad_count > len(bad):
        click.echo(f"spotify-sync: ... and {bad_count - len(bad)} more bad line(s)", err=True)
    if result.total_ids == 0:
        raise UsageProblem("no track ids to enqueue" + (f" ({bad_count} bad line(s))" if bad_count else ""))
    click.echo(result.summary())
    if bad_count:
        raise WorkFailed(f"{bad_count} bad line(s) skipped; the {result.total_ids:,} good id(s) were enqueued")


def _open_ids_file(path: str) -> tuple[BinaryIO, str]:
    """The ids file opened in binary (IdReader decodes each line: a bad byte is one bad line),
    and the name to report lines by. '-' is stdin, left open on the way out."""
    import os
    import sys

    if path == "-":
        if sys.stdin is None or not hasattr(sys.stdin, "buffer"):
            raise UsageProblem("--ids-file -: there is no standard input to read (it is closed)")
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb"), "<stdin>"
    try:
        return open(path, "rb"), path  # closed by the caller's ExitStack
    except OSError as exc:
        raise UsageProblem(f"--ids-file {path}: {exc.strerror or exc}") from None


@enqueue.command(BY_NAME["user_library"].cli_label)
@click.option("--user", "users", multiple=True, help="The application's user id (repeatable).")
@click.option("--all", "all_users", is_flag=True, help="Every user with an active Spotify connection.")
@click.option("--full", is_flag=True,
              help="Read the whole library (default: stop at tracks already known, unless the last sync failed part way).")
@click.pass_context
def enqueue_user_library(ctx: click.Context, users: tuple[str, ...], all_users: bool, full: bool) -> None:
    """Sync users' saved tracks: --user U (repeatable) or --all.

    A user who already has a library job pending or running gets no second one.
    """
    from pipeline.errors import ProducerBusy
    from pipeline.producers import enqueue_user_library as produce

    if bool(users) == all_users:
        raise UsageProblem("give --user U (one or more) or --all")
    settings = settings_of(ctx)
    with database(settings) as engine, job_sender(settings) as (_, send):
        try:
            result, left_alone = produce(engine, send, user_ids=None if all_users else list(users), full=full)
        except ProducerBusy as exc:
            raise WorkFailed(str(exc)) from None
    click.echo(f"{result.jobs} library job(s) enqueued" + (f", backfill {result.backfill_id}" if result.backfill_id else ""))
    if left_alone:
        click.echo(f"left alone (a library job is already pending or running, or no active connection): "
                   f"{', '.join(left_alone)}", err=True)
    if users and result.jobs == 0:
        raise WorkFailed("no library job enqueued")


@enqueue.command(BY_NAME["popularity_update"].cli_label)
@click.option("--older-than", default=None,
              help="Refresh songs whose popularity is older (30m, 1h, 2d). Default: POPULARITY_TTL (1h).")
@click.option("--limit", default=10_000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="At most this many songs, stalest first.")
@click.pass_context
def enqueue_popularity_update(ctx: click.Context, older_than: str | None, limit: int) -> None:
    """Refresh the popularity of the stalest songs, in jobs of 50 (the hourly cron entry point)."""
    from pipeline.errors import ProducerBusy
    from pipeline.producers import enqueue_popularity_update as produce
    from shared.settings import parse_duration_s

    settings = settings_of(ctx)
    try:
        older_than_s = settings.popularity_ttl_s if older_than is None else parse_duration_s(older_than)
    except ValueError as exc:
        raise UsageProblem(f"--older-than: expected {exc}, got {older_than!r}") from None
    with database(settings) as engine, job_sender(settings) as (_, send):
        try:
            result = produce(engine, send, older_than_s=older_than_s, limit=limit)
        except ProducerBusy as exc:
            raise WorkFailed(str(exc)) from None
    click.echo(f"{result.jobs} popularity job(s) enqueued for {result.total_ids} song(s)"
               + (f", backfill {result.backfill_id}" if result.backfill_id else ""))
