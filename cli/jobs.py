"""`spotify-sync jobs`: the job ledger (pipeline/store/ledger.py, pipeline/reconciler.py): list, show, retry,
cancel, reconcile."""

from __future__ import annotations

from typing import Any

import click

from cli.common import UsageProblem, WorkFailed, database, echo_json, echo_line, job_sender, settings_of
from shared.jobtypes import JOB_TYPE_NAMES

JSON_HELP = "Print one JSON document (datetimes ISO-8601, UTC) instead of the table."


def _job_line(job: Any) -> str:
    size = len(job.payload.get("ids", [])) if isinstance(job.payload, dict) else 0
    what = f"{size} ids" if size else (f"user {job.user_id}" if job.user_id else "")
    extra = f"  {job.error_class}: {job.error}" if job.error_class else ""
    if job.status == "pending" and job.not_before:
        extra = f"  not before {job.not_before:%Y-%m-%d %H:%M:%S}" + extra
    return (f"{job.id}  {job.job_type:<17} {job.status:<9} retries {job.retry_count}  "
            f"{job.created_at:%Y-%m-%d %H:%M:%S}  {what}{extra}")


@click.group()
def jobs() -> None:
    """Inspect and steer jobs: list, show, retry, cancel, reconcile."""


@jobs.command("list")
@click.option("--status", type=click.Choice(["pending", "running", "completed", "failed"]))
@click.option("--type", "job_type", type=click.Choice(JOB_TYPE_NAMES))
@click.option("--backfill", "backfill_id", help="Only the jobs of this backfill.")
@click.option("--user", "user_id", help="Only this user's jobs.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP + " An array of job objects, as `jobs show` prints.")
@click.pass_context
def jobs_list(ctx: click.Context, status: str | None, job_type: str | None, backfill_id: str | None,
              user_id: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs first."""
    from pipeline.store import ledger

    with database(settings_of(ctx)) as engine:
        found = ledger.list_jobs(engine, status=status, job_type=job_type, backfill_id=backfill_id,
                                 user_id=user_id, limit=limit)
    if as_json:
        echo_json(found)
        return
    for job in found:
        echo_line(_job_line(job))


@jobs.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as one line of JSON (the default is indented).")
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Everything the ledger knows of JOB_ID (an unambiguous prefix of at least 6 characters will do),
    as a JSON object: the keys of `jobs list --json`."""
    from pipeline.store import ledger
    from shared.logging import printable

    with database(settings_of(ctx)) as engine:
        job = ledger.get_job(engine, job_id)
    if job is None:
        raise UsageProblem(f"no job {printable(job_id)!r}")
    echo_json(job, indent=None if as_json else 2)  # for a person: indented, but the same document


@jobs.command("retry")
@click.argument("job_ids", nargs=-1)
@click.option("--failed", "all_failed", is_flag=True, help="Every failed job (narrow with --type / --backfill).")
@click.option("--type", "job_type", type=click.Choice(JOB_TYPE_NAMES))
@click.option("--backfill", "backfill_id")
@click.pass_context
def jobs_retry(ctx: click.Context, job_ids: tuple[str, ...], all_failed: bool, job_type, backfill_id) -> None:
    """Run failed jobs again, with a fresh retry budget: JOB_IDS or --failed."""
    from pipeline.store import ledger

    if bool(job_ids) == all_failed:
        raise UsageProblem("give JOB_IDS or --failed")
    settings = settings_of(ctx)
    with database(settings) as engine, job_sender(settings) as (_, send):
        ids = list(job_ids) or ledger.failed_job_ids(engine, job_type=job_type, backfill_id=backfill_id)
        reset = ledger.reset_for_retry(engine, ids)
        for job_id, kind in reset:
            send(kind, job_id)
    click.echo(f"{len(reset)} job(s) sent again")
    if job_ids and len(reset) < len(job_ids):
        raise WorkFailed(f"{len(job_ids) - len(reset)} job(s) were not failed (or not found): left as they are")


@jobs.command("cancel")
@click.argument("job_ids", nargs=-1)
@click.option("--backfill", "backfill_id", help="Every unfinished job of this backfill.")
@click.pass_context
def jobs_cancel(ctx: click.Context, job_ids: tuple[str, ...], backfill_id) -> None:
    """Stop pending or running jobs: they become failed with errorClass Cancelled."""
    from pipeline.store import ledger

    if bool(job_ids) == bool(backfill_id):
        raise UsageProblem("give JOB_IDS or --backfill ID")
    with database(settings_of(ctx)) as engine:
        ids = list(job_ids)
        if backfill_id:
            ids = [j.id for status in ("pending", "running")
                   for j in ledger.list_jobs(engine, status=status, backfill_id=backfill_id, limit=10_000_000)]
        cancelled = ledger.cancel(engine, ids)
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
    from shared.settings import parse_duration_s
    from workers.broker import live_job_ids

    try:
        grace_s, stale_after_s = parse_duration_s(grace), parse_duration_s(stale_after)
    except ValueError as exc:
        raise UsageProblem(f"expected {exc}") from None
    settings = settings_of(ctx)
    with database(settings) as engine, job_sender(settings) as (broker, send):
        result = reconcile(engine, send, lambda: live_job_ids(broker), max_retries=settings.job_max_retries,
                           grace_s=grace_s, stale_after_s=stale_after_s)
    click.echo(result.summary())
