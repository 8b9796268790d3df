"""`spotify-sync status`: queues, jobs, backfills, penalty box, rate budget and capabilities."""

from __future__ import annotations

import click

from cli.common import database, job_sender, redis_client, settings_of
from shared.jobtypes import JOB_TYPE_NAMES


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
    for job_type in JOB_TYPE_NAMES:
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


@click.command("status")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600), help="Seconds between refreshes.")
@click.pass_context
def status(ctx: click.Context, watch: bool, interval: float) -> None:
    """Queue depths, jobs by status, recent backfills, the penalty box, the rate budget and
    what the app may call."""
    import time
    from contextlib import nullcontext

    settings = settings_of(ctx)
    with database(settings, pool_size=1) as engine, job_sender(settings) as (broker, _), \
            (redis_client(settings) if settings.redis_url else nullcontext()) as redis:
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
