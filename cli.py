"""spotify-sync: the operator's command line.

Parses, calls into shared/, pipeline/ and workers/, prints. Exit codes: 0 ok, 1 the work failed,
2 bad usage or a missing/malformed setting (one line naming the variable).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

import click

from shared.settings import Settings, SettingsError


class FriendlyGroup(click.Group):
    """Turns the project's expected errors into one line on stderr and the right exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            _fail(str(exc), code=2)
        except UsageProblem as exc:
            _fail(str(exc), code=2)
        except WorkFailed as exc:
            _fail(str(exc), code=1)


class UsageProblem(Exception):
    """Bad input from the user: exit 2."""


class WorkFailed(Exception):
    """The command ran but its work failed: exit 1."""


def _fail(message: str, code: int) -> None:
    click.echo(f"spotify-sync: {message}", err=True)
    sys.exit(code)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Keep a music database enriched with Spotify data.

    Settings come from the environment (see README.md). With DATABASE_URL and REDIS_URL unset,
    the embedded services of `spotify-sync services up` are used.
    """
    from shared.logging import setup_logging

    try:
        ctx.obj = Settings.from_env()
    except SettingsError as exc:
        _fail(str(exc), code=2)
    setup_logging(ctx.obj)


# --- db -----------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database migrations (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from shared import migrate

    url = settings_of(ctx).require_database_url()
    migrate.upgrade(url, revision)
    click.echo(f"database at {migrate.current(url)}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION (e.g. -1, baseline, base)."""
    from shared import migrate

    url = settings_of(ctx).require_database_url()
    migrate.downgrade(url, revision)
    click.echo(f"database at {migrate.current(url) or 'base (empty)'}")


@db.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """Print the revision the database is at."""
    from shared import migrate

    click.echo(migrate.current(settings_of(ctx).require_database_url()) or "base (not migrated)")


@db.command("stamp")
@click.argument("revision")
@click.pass_context
def db_stamp(ctx: click.Context, revision: str) -> None:
    """Mark the database as being at REVISION without running anything.

    For an existing database that already has the application's users and songs tables:
    `spotify-sync db stamp baseline && spotify-sync db upgrade`.
    """
    from shared import migrate

    migrate.stamp(settings_of(ctx).require_database_url(), revision)
    click.echo(f"database stamped at {revision}")


@db.command("create-reader")
@click.option("--role", default="songs_reader", show_default=True, help="The role's name.")
@click.option("--password-env", metavar="VAR",
              help="Set the role's password from this environment variable (never printed). "
                   "Without it a new role has no password and an existing one keeps its own.")
@click.pass_context
def db_create_reader(ctx: click.Context, role: str, password_env: str | None) -> None:
    """Create or refresh a read-only role for the services that read songs.

    It may SELECT songs, saved-track links and popularity history, and nothing else: no tokens
    (spotify_connections), no jobs, no users. Safe to run again; run it after `db upgrade` so new
    reader tables are granted. Needs a user with CREATEROLE.
    """
    import os

    from pipeline.readers import ReaderError, check_role_name, create_reader
    from shared.db import make_engine

    try:
        check_role_name(role)
    except ReaderError as exc:
        raise UsageProblem(str(exc)) from None
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise UsageProblem(f"{password_env}: expected the password for role {role!r}, but it is not set")
    engine = make_engine(settings_of(ctx), pool_size=1)
    try:
        done = create_reader(engine, role, password)
    except ReaderError as exc:
        raise WorkFailed(str(exc)) from None
    finally:
        engine.dispose()
    click.echo(f"role {done.role} {'created' if done.created else 'refreshed'}"
               f"{', password set' if done.password_set else ''}")
    click.echo(f"  SELECT on: {', '.join(done.granted) or 'nothing yet'}")
    if done.missing:
        click.echo(f"  not there yet (run again after `db upgrade`): {', '.join(done.missing)}")


# --- keys ---------------------------------------------------------------------------------------


@main.group()
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
    from pipeline.connections import rotate_keys
    from shared.crypto import TokenCipher
    from shared.db import make_engine

    settings = settings_of(ctx)
    cipher = TokenCipher(settings.require_token_keys())
    engine = make_engine(settings)
    rewritten = rotate_keys(engine, cipher, batch_size=batch_size)
    click.echo(f"re-encrypted {rewritten} connection(s) under the first key; the other keys may now be dropped")


# --- services -----------------------------------------------------------------------------------


@main.group()
def services() -> None:
    """Embedded PostgreSQL and Redis for a machine that has none."""


@services.command("up")
@click.pass_context
def services_up(ctx: click.Context) -> None:
    """Start the embedded PostgreSQL and Redis (or find them running)."""
    from shared import services as embedded

    settings = settings_of(ctx)
    try:
        state = embedded.up(settings.state_dir)
    except embedded.ServicesError as exc:
        raise WorkFailed(str(exc)) from None
    click.echo(f"postgres pid {state['postgres_pid']}  {state['database_url']}")
    click.echo(f"redis    pid {state['redis_pid']}  {state['redis_url']}")


@services.command("status")
@click.pass_context
def services_status(ctx: click.Context) -> None:
    """Show the embedded services and whether they run."""
    from shared import services as embedded

    found = embedded.status(settings_of(ctx).state_dir)
    if not found:
        click.echo("no embedded services recorded")
        return
    for name, info in found.items():
        click.echo(f"{name:<8} pid {info['pid']}  {'running' if info['running'] else 'stopped'}  {info['url']}")


@services.command("down")
@click.pass_context
def services_down(ctx: click.Context) -> None:
    """Stop the embedded services by PID."""
    from shared import services as embedded

    stopped = embedded.down(settings_of(ctx).state_dir)
    click.echo("stopped " + ", ".join(stopped) if stopped else "nothing was running")


# --- demo ---------------------------------------------------------------------------------------


@main.command()
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
    from pipeline import demo as the_demo

    try:
        the_demo.run(settings_of(ctx), click.echo, the_demo.DemoPlan(tracks=tracks, workers=workers, threads=threads))
    except the_demo.DemoFailed as exc:
        raise WorkFailed(str(exc)) from None


# --- enqueue: producers (pipeline/producers.py) ---------------------------------------------------


def _job_sender(settings):
    """The broker and the sender of job messages (the CLI only sends; workers consume)."""
    from workers.actors import declare_actors
    from workers.broker import build_broker
    from workers.middleware import JobSender

    broker = build_broker(settings)
    declare_actors(broker)
    return broker, JobSender(broker)


def _progress(quiet: bool):
    def show(stage: str, done: int, total: int) -> None:
        if not quiet:
            click.echo(f"  {stage}: {done:,}" + (f" / {total:,}" if total else ""), err=True)

    return show


@main.group()
def enqueue() -> None:
    """Create jobs (rows first, then one message each carrying the job id)."""


@enqueue.command("track-sync")
@click.argument("ids", nargs=-1)
@click.option("--ids-file", type=click.File("r"), help="One id, URI or URL per line; '-' reads stdin.")
@click.option("--force", is_flag=True, help="Fetch ids synced within TRACK_TTL too.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines.")
@click.pass_context
def enqueue_track_sync(ctx: click.Context, ids: tuple[str, ...], ids_file, force: bool, quiet: bool) -> None:
    """Sync tracks: IDS as arguments and/or --ids-file, in jobs of 50.

    Ids fresh in the cache (synced within TRACK_TTL) and duplicates are left out unless --force.
    Bad lines are reported with their line numbers and the good ones are enqueued; the exit code
    is then 1. With no usable id at all: exit 2.
    """
    from itertools import chain

    from pipeline.idfile import IdReader
    from pipeline.producers import enqueue_track_sync as produce
    from shared.db import make_engine

    if not ids and ids_file is None:
        raise UsageProblem("give track ids as arguments or with --ids-file FILE (or - for stdin)")
    settings = settings_of(ctx)
    readers = [IdReader(ids, label="argument")] if ids else []
    if ids_file is not None:
        readers.append(IdReader(ids_file, label=f"{getattr(ids_file, 'name', 'stdin')} line"))
    engine = make_engine(settings)
    broker, send = _job_sender(settings)
    try:
        result = produce(engine, send, chain.from_iterable(readers), force=force, track_ttl_s=settings.track_ttl_s,
                         description="track-sync" + (" --force" if force else ""), progress=_progress(quiet))
    finally:
        broker.close()
        engine.dispose()
    bad = [line for reader in readers for line in reader.bad]
    bad_count = sum(reader.bad_count for reader in readers)
    for line in bad:
        click.echo(f"spotify-sync: {line.where}: not a Spotify track id, URI or URL: {line.text!r}", err=True)
    if bad_count > len(bad):
        click.echo(f"spotify-sync: ... and {bad_count - len(bad)} more bad line(s)", err=True)
    if result.total_ids == 0:
        raise UsageProblem("no track ids to enqueue" + (f" ({bad_count} bad line(s))" if bad_count else ""))
    click.echo(result.summary())
    if bad_count:
        raise WorkFailed(f"{bad_count} bad line(s) skipped; the {result.total_ids:,} good id(s) were enqueued")


@enqueue.command("user-library")
@click.option("--user", "users", multiple=True, help="The application's user id (repeatable).")
@click.option("--all", "all_users", is_flag=True, help="Every user with an active Spotify connection.")
@click.option("--full", is_flag=True, help="Read the whole library (default: stop at tracks already known).")
@click.pass_context
def enqueue_user_library(ctx: click.Context, users: tuple[str, ...], all_users: bool, full: bool) -> None:
    """Sync users' saved tracks: --user U (repeatable) or --all.

    A user who already has a library job pending or running gets no second one.
    """
    from pipeline.producers import enqueue_user_library as produce
    from shared.db import make_engine

    if bool(users) == all_users:
        raise UsageProblem("give --user U (one or more) or --all")
    settings = settings_of(ctx)
    engine = make_engine(settings)
    broker, send = _job_sender(settings)
    try:
        result, left_alone = produce(engine, send, user_ids=None if all_users else list(users), full=full)
    finally:
        broker.close()
        engine.dispose()
    click.echo(f"{result.jobs} library job(s) enqueued" + (f", backfill {result.backfill_id}" if result.backfill_id else ""))
    if left_alone:
        click.echo(f"left alone (a library job is already pending or running, or no active connection): "
                   f"{', '.join(left_alone)}", err=True)
    if users and result.jobs == 0:
        raise WorkFailed("no library job enqueued")


@enqueue.command("popularity-update")
@click.option("--older-than", default="1h", show_default=True, help="Refresh songs whose popularity is older (30m, 1h, 2d).")
@click.option("--limit", default=10_000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="At most this many songs, stalest first.")
@click.pass_context
def enqueue_popularity_update(ctx: click.Context, older_than: str, limit: int) -> None:
    """Refresh the popularity of the stalest songs, in jobs of 50 (the hourly cron entry point)."""
    from pipeline.producers import enqueue_popularity_update as produce
    from shared.db import make_engine
    from shared.settings import parse_duration_s

    try:
        older_than_s = parse_duration_s(older_than)
    except ValueError as exc:
        raise UsageProblem(f"--older-than: expected {exc}, got {older_than!r}") from None
    settings = settings_of(ctx)
    engine = make_engine(settings)
    broker, send = _job_sender(settings)
    try:
        result = produce(engine, send, older_than_s=older_than_s, limit=limit)
    finally:
        broker.close()
        engine.dispose()
    click.echo(f"{result.jobs} popularity job(s) enqueued for {result.total_ids} song(s)"
               + (f", backfill {result.backfill_id}" if result.backfill_id else ""))


# --- jobs: the ledger (pipeline/jobs.py, pipeline/reconciler.py) ----------------------------------


def _job_line(job) -> str:
    size = len(job.payload.get("ids", [])) if isinstance(job.payload, dict) else 0
    what = f"{size} ids" if size else (f"user {job.user_id}" if job.user_id else "")
    extra = f"  {job.error_class}: {job.error}" if job.error_class else ""
    if job.status == "pending" and job.not_before:
        extra = f"  not before {job.not_before:%Y-%m-%d %H:%M:%S}" + extra
    return (f"{job.id}  {job.job_type:<17} {job.status:<9} retries {job.retry_count}  "
            f"{job.created_at:%Y-%m-%d %H:%M:%S}  {what}{extra}")


@main.group()
def jobs() -> None:
    """Inspect and steer jobs: list, show, retry, cancel, reconcile."""


@jobs.command("list")
@click.option("--status", type=click.Choice(["pending", "running", "completed", "failed"]))
@click.option("--type", "job_type", type=click.Choice(["track_sync", "user_library", "popularity_update"]))
@click.option("--backfill", "backfill_id", help="Only the jobs of this backfill.")
@click.option("--user", "user_id", help="Only this user's jobs.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.pass_context
def jobs_list(ctx: click.Context, status, job_type, backfill_id, user_id, limit: int) -> None:
    """The newest jobs first."""
    from pipeline import jobs as ledger
    from shared.db import make_engine

    engine = make_engine(settings_of(ctx))
    for job in ledger.list_jobs(engine, status=status, job_type=job_type, backfill_id=backfill_id,
                                user_id=user_id, limit=limit):
        click.echo(_job_line(job))
    engine.dispose()


@jobs.command("show")
@click.argument("job_id")
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str) -> None:
    """Everything the ledger knows of JOB_ID (an unambiguous prefix of at least 6 characters will do)."""
    import json
    from dataclasses import asdict

    from pipeline import jobs as ledger
    from shared.db import make_engine

    engine = make_engine(settings_of(ctx))
    job = ledger.get_job(engine, job_id)
    engine.dispose()
    if job is None:
        raise UsageProblem(f"no job {job_id!r}")
    click.echo(json.dumps(asdict(job), indent=2, default=str))


@jobs.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Every failed job (narrow with --type / --backfill).")
@click.option("--type", "job_type", type=click.Choice(["track_sync", "user_library", "popularity_update"]))
@click.option("--backfill", "backfill_id")
@click.pass_context
def jobs_retry(ctx: click.Context, job_ids: tuple[str, ...], all_failed: bool, job_type, backfill_id) -> None:
    """Run failed jobs again, with a fresh retry budget: JOB_IDS or --failed."""
    from pipeline import jobs as ledger
    from shared.db import make_engine

    if bool(job_ids) == all_failed:
        raise UsageProblem("give JOB_IDS or --failed")
    settings = settings_of(ctx)
    engine = make_engine(settings)
    ids = list(job_ids) or ledger.failed_job_ids(engine, job_type=job_type, backfill_id=backfill_id)
    broker, send = _job_sender(settings)
    try:
        reset = ledger.reset_for_retry(engine, ids)
        for job_id, kind in reset:
            send(kind, job_id)
    finally:
        broker.close()
        engine.dispose()
    click.echo(f"{len(reset)} job(s) sent again")
    if job_ids and len(reset) < len(job_ids):
        raise WorkFailed(f"{len(job_ids) - len(reset)} job(s) were not failed (or not found): left as they are")


@jobs.command("cancel")
@click.argument("job_ids", nargs=-1)
@click.option("--backfill", "backfill_id", help="Every unfinished job of this backfill.")
@click.pass_context
def jobs_cancel(ctx: click.Context, job_ids: tuple[str, ...], backfill_id) -> None:
    """Stop pending or running jobs: they become failed with errorClass Cancelled."""
    from pipeline import jobs as ledger
    from shared.db import make_engine

    if bool(job_ids) == bool(backfill_id):
        raise UsageProblem("give JOB_IDS or --backfill ID")
    engine = make_engine(settings_of(ctx))
    ids = list(job_ids)
    if backfill_id:
        ids = [j.id for status in ("pending", "running")
               for j in ledger.list_jobs(engine, status=status, backfill_id=backfill_id, limit=10_000_000)]
    cancelled = ledger.cancel(engine, ids)
    engine.dispose()
    click.echo(f"{len(cancelled)} job(s) cancelled")


@jobs.command("reconcile")
@click.option("--grace", default="2m", show_default=True,
              help="Leave pending jobs alone whose message was sent more recently than this.")
@click.option("--stale-after", default="1h", show_default=True,
              help="Brokers that cannot list their messages (RabbitMQ): re-send pending jobs this old.")
@click.pass_context
def jobs_reconcile(ctx: click.Context, grace: str, stale_after: str) -> None:
    """Re-send jobs whose message was lost: running with an expired lease (a dead worker), or
    pending without a live message (Redis lost its data). Safe every few minutes, from cron, on
    several hosts at once."""
    from pipeline.reconciler import reconcile
    from shared.db import make_engine
    from shared.settings import parse_duration_s
    from workers.broker import live_job_ids

    try:
        grace_s, stale_after_s = parse_duration_s(grace), parse_duration_s(stale_after)
    except ValueError as exc:
        raise UsageProblem(f"expected {exc}") from None
    settings = settings_of(ctx)
    engine = make_engine(settings)
    broker, send = _job_sender(settings)
    try:
        result = reconcile(engine, send, lambda: live_job_ids(broker), max_retries=settings.job_max_retries,
                           grace_s=grace_s, stale_after_s=stale_after_s)
    finally:
        broker.close()
        engine.dispose()
    click.echo(result.summary())


# --- status -------------------------------------------------------------------------------------


def _status_lines(settings, engine, broker, redis) -> list[str]:
    from pipeline.status import snapshot
    from workers.broker import queue_depths

    snap = snapshot(settings, engine, redis)
    lines = ["queues (ready / delayed / in flight / dead):"]
    try:
        for depth in queue_depths(broker):
            shown = " / ".join("?" if n is None else f"{n:,}" for n in (depth.ready, depth.delayed, depth.in_flight,
                                                                          depth.dead))
            lines.append(f"  {depth.queue:<11} {shown}")
    except Exception as exc:  # noqa: BLE001 - show the rest
        lines.append(f"  broker did not answer: {exc.__class__.__name__}")
    lines.append("jobs (pending [parked] / running / completed / failed):")
    for job_type in ("track_sync", "user_library", "popularity_update"):
        c = snap.counts.get(job_type, {})
        lines.append(f"  {job_type:<17} {c.get('pending', 0):,} [{c.get('parked', 0):,}] / {c.get('running', 0):,} / "
                     f"{c.get('completed', 0):,} / {c.get('failed', 0):,}")
    if snap.backfills:
        lines.append("recent backfills:")
        for b in snap.backfills:
            lines.append(f"  {b.id}  {b.job_type:<17} {b.finished_jobs:,}/{b.total_jobs:,} jobs done "
                         f"({b.by_status.get('failed', 0):,} failed)  {b.state}  {b.description or ''}")
    if snap.client_id:
        lines.append(f"client id {snap.client_id}:")
        if snap.penalty_s is not None:
            lines.append("  penalty box: " + (f"blocked for {snap.penalty_s:.0f}s more ({snap.penalty_reason})"
                                              if snap.penalty_s > 0 else "open"))
        if snap.rate_used is not None:
            lines.append(f"  rate budget: {snap.rate_used} used of {snap.rate_limit}")
        for cap in snap.capabilities:
            lines.append(f"  capability {cap.capability}: " + ("allowed" if cap.allowed else
                         f"forbidden ({cap.reason}); looked at again after {cap.recheck_after:%Y-%m-%d %H:%M}"))
    lines.extend(f"  ! {problem}" for problem in snap.problems)
    return lines


@main.command("status")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600), help="Seconds between refreshes.")
@click.pass_context
def status(ctx: click.Context, watch: bool, interval: float) -> None:
    """Queue depths, jobs by status, recent backfills, the penalty box, the rate budget and
    what the app may call."""
    import time

    from shared.db import make_engine
    from shared.redis_conn import connect

    settings = settings_of(ctx)
    engine = make_engine(settings, pool_size=1)
    redis = connect(settings) if settings.redis_url else None
    broker, _ = _job_sender(settings)
    try:
        while True:
            lines = _status_lines(settings, engine, broker, redis)
            if watch:
                click.clear()
            click.echo("\n".join(lines))
            if not watch:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        broker.close()
        engine.dispose()


# --- worker -------------------------------------------------------------------------------------


@main.command("worker")
@click.option("--processes", "-p", default=2, show_default=True, type=click.IntRange(1, 256))
@click.option("--threads", "-t", default=8, show_default=True, type=click.IntRange(1, 1024))
@click.option("--queues", "-Q", multiple=True, type=click.Choice(["library", "popularity", "tracks"]),
              help="Only these queues (repeatable; default: all).")
@click.option("--shutdown-timeout", default="30s", show_default=True,
              help="How long a stopping worker lets running jobs finish (their leases cover the rest).")
@click.option("--pid-file", type=click.Path(dir_okay=False), help="Write the main process's PID here.")
@click.option("--metrics-port", default=9191, show_default=True, type=click.IntRange(0, 65535),
              envvar="dramatiq_prom_port",
              help="Prometheus metrics of every worker process, on one port (0: no metrics endpoint).")
@click.option("--metrics-host", default="0.0.0.0", show_default=True, envvar="dramatiq_prom_host")
@click.pass_context
def worker(ctx: click.Context, processes: int, threads: int, queues: tuple[str, ...], shutdown_timeout: str,
           pid_file: str | None, metrics_port: int, metrics_host: str) -> None:
    """Run workers: Dramatiq's worker processes x threads, consuming the job queues.

    Each process sets up its own logging, database engine and Spotify client. SIGTERM stops
    them gracefully; jobs a killed worker held are run again (see workers/broker.py). Metrics:
    http://HOST:METRICS_PORT/ (Prometheus text format).
    """
    # Before anything imports prometheus_client: every process of this run writes its values to
    # one fresh directory, which Dramatiq's exposition server reads (multiprocess mode).
    metrics_dir = tempfile.mkdtemp(prefix="spotify-sync-metrics-")
    os.environ.update({"PROMETHEUS_MULTIPROC_DIR": metrics_dir, "dramatiq_prom_db": metrics_dir,
                       "dramatiq_prom_port": str(metrics_port), "dramatiq_prom_host": metrics_host})
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    from shared.settings import parse_duration_s
    from workers.middleware import route_stdlib_logging

    settings = settings_of(ctx)
    settings.require_database_url()
    settings.effective_broker_url  # noqa: B018 - fails now, with one line, rather than in every process
    try:
        shutdown_ms = parse_duration_s(shutdown_timeout) * 1000
    except ValueError as exc:
        raise UsageProblem(f"--shutdown-timeout: expected {exc}") from None
    argv = ["workers.main:broker", "--processes", str(processes), "--threads", str(threads), "--skip-logging",
            "--worker-shutdown-timeout", str(shutdown_ms)]
    if queues:
        argv += ["--queues", *queues]
    if pid_file:
        argv += ["--pid-file", pid_file]
    route_stdlib_logging(settings.log_level)
    try:
        code = dramatiq_main(make_argument_parser().parse_args(argv))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(code)


# --- connect -------------------------------------------------------------------------------------


@main.command("connect")
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

    Prints the URL to open; a one-shot server on SPOTIFY_REDIRECT_URI (a 127.0.0.1 address)
    receives the redirect.
    """
    import httpx

    from pipeline.auth.callback_server import CallbackServer
    from pipeline.auth.flow import DEFAULT_SCOPES, authorize_url, exchange_code, new_pkce, new_state, store_connection
    from pipeline.spotify import SpotifyClient
    from pipeline.spotify.errors import SpotifyError
    from pipeline.spotify.http import shared_http_client
    from pipeline.spotify.wiring import token_endpoint
    from shared.crypto import TokenCipher
    from shared.db import make_engine
    from shared.redis_conn import connect as redis_connect

    settings = settings_of(ctx)
    client_id, _ = settings.require_client_credentials()
    cipher = TokenCipher(settings.require_token_keys())
    scopes = scopes or DEFAULT_SCOPES
    pkce, state = new_pkce(), new_state()
    extra = {"emulated_user": emulated_user} if emulated_user else None
    url = authorize_url(settings.spotify_accounts_base_url, client_id, settings.spotify_redirect_uri, state,
                        pkce.challenge, scopes, extra)
    try:
        server = CallbackServer(settings.spotify_redirect_uri)
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
    if params.get("state") != state:
        raise WorkFailed("the redirect's state does not match: not connecting")
    if "code" not in params:
        raise WorkFailed(f"Spotify refused: {params.get('error', 'no code')}")
    engine = make_engine(settings)
    try:
        grant = exchange_code(token_endpoint(settings, shared_http_client(settings)), params["code"], pkce.verifier,
                              settings.spotify_redirect_uri)
        spotify = SpotifyClient.from_settings(settings, redis_connect(settings), engine)
        me = spotify.with_access_token(grant.access_token).me()
        store_connection(engine, cipher, user_id, me.id, grant, tuple(scopes))
    except SpotifyError as exc:
        raise WorkFailed(f"connecting failed: {exc}") from None
    finally:
        engine.dispose()
    click.echo(f"connected user {user_id} to Spotify user {me.id} (scopes: {' '.join(grant.scopes or scopes)})")


def _add_emulator_command() -> None:
    # The emulator keeps its own command module: it is a separate tool that ships with us.
    from emulator.cli import emulator

    main.add_command(emulator)


_add_emulator_command()


if __name__ == "__main__":
    main()
