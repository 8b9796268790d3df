"""`spotify-sync status`: queues, jobs, backfills, penalty box, rate budget and capabilities, as
lines for a person or (`--json`) one JSON document for a script."""

from __future__ import annotations

from typing import Any

import click

from cli.common import UsageProblem, database, echo_json, echo_line, job_sender, redis_client, settings_of
from shared.jobtypes import JOB_TYPE_NAMES

JOB_COUNTS = ("pending", "parked", "running", "completed", "failed")


def _queues(broker: Any) -> tuple[list[Any], str | None]:
    """The broker's queue depths, or why it did not answer (the rest of the status still shows)."""
    from workers.broker import queue_depths

    try:
        return queue_depths(broker), None
    except Exception as exc:  # noqa: BLE001 - show the rest
        return [], f"broker did not answer: {exc.__class__.__name__}"


def _status_document(settings: Any, engine: Any, broker: Any, redis: Any) -> dict[str, Any]:
    """What `status --json` prints. Keys (stable): queues, jobs, backfills, search, penalty_box,
    budget, quota, capabilities, problems; search: queued (songs written and not yet searchable,
    counted up to at_most), null without the search tables; penalty_box, budget and quota are null
    when there is no client id or no Redis to ask. budget: used, limit, requests (per window_s, in force now), learned,
    kept_in, limit_measured_at; quota: developer_account, shut, blocked_for_s, reason, until."""
    from pipeline.status import SEARCH_QUEUE_COUNTED, snapshot

    snap = snapshot(settings, engine, redis)
    depths, broker_problem = _queues(broker)
    problems = ([broker_problem] if broker_problem else []) + list(snap.problems)
    penalty = None if snap.penalty_s is None else {
        "client_id": snap.client_id, "blocked_for_s": snap.penalty_s, "reason": snap.penalty_reason}
    budget = None if snap.rate_used is None else {
        "client_id": snap.client_id, "used": snap.rate_used, "limit": snap.rate_limit}
    quota = None
    if snap.limits is not None:
        from pipeline.ratecontrol.report import as_document

        limits = as_document(snap.limits)
        budget = {**(budget or {}), **limits["budget"]}
        quota = {"developer_account": limits["developer_account"], **limits["quota"]}
    return {
        "queues": depths,
        "jobs": {t: {c: snap.counts.get(t, {}).get(c, 0) for c in JOB_COUNTS} for t in JOB_TYPE_NAMES},
        "backfills": [{"id": b.id, "job_type": b.job_type, "description": b.description, "state": b.state,
                       "total_ids": b.total_ids, "skipped_ids": b.skipped_ids, "total_jobs": b.total_jobs,
                       "finished_jobs": b.finished_jobs, "by_status": b.by_status, "created_at": b.created_at}
                      for b in snap.backfills],
        "search": None if snap.search_queued is None else {"queued": snap.search_queued,
                                                            "at_most": SEARCH_QUEUE_COUNTED},
        "penalty_box": penalty,
        "budget": budget,
        "quota": quota,
        "capabilities": snap.capabilities,
        "problems": problems,
    }


def _status_lines(document: dict[str, Any]) -> list[str]:
    """The same document, as lines for a person (made printable when echoed)."""
    lines = ["queues (ready / delayed / in flight / dead):"]
    for depth in document["queues"]:
        shown = " / ".join("?" if n is None else f"{n:,}" for n in (depth.ready, depth.delayed, depth.in_flight,
                                                                      depth.dead))
        lines.append(f"  {depth.queue:<11} {shown}")
    lines.append("jobs (pending [parked] / running / completed / failed):")
    for job_type, c in document["jobs"].items():
        lines.append(f"  {job_type:<17} {c['pending']:,} [{c['parked']:,}] / {c['running']:,} / "
                     f"{c['completed']:,} / {c['failed']:,}")
    if document["backfills"]:
        lines.append("recent backfills:")
        for b in document["backfills"]:
            lines.append(f"  {b['id']}  {b['job_type']:<17} {b['finished_jobs']:,}/{b['total_jobs']:,} jobs done "
                         f"({b['by_status'].get('failed', 0):,} failed)  {b['state']}  {b['description'] or ''}")
    search = document["search"]
    if search:
        more = "+" if search["queued"] >= search["at_most"] else ""
        lines.append(f"search index: {search['queued']:,}{more} song write(s) waiting for the indexer")
    penalty, budget = document["penalty_box"], document["budget"]
    client_id = (penalty or budget or {}).get("client_id")
    if client_id or document["capabilities"]:
        lines.append(f"client id {client_id}:")
    if penalty:
        lines.append("  penalty box: " + (f"blocked for {penalty['blocked_for_s']:.0f}s more ({penalty['reason']})"
                                          if penalty["blocked_for_s"] > 0 else "open"))
    if budget:
        lines.append(f"  rate budget: {budget['used']} used of {budget['limit']}")
    quota = document.get("quota")
    if quota:
        lines.append(f"  quota ({quota['developer_account']}): " + (
            f"spent ({quota['reason']}); comes back in {quota['blocked_for_s']:.0f}s, at {quota['until']}"
            if quota["shut"] else "not spent"))
    for cap in document["capabilities"]:
        lines.append(f"  capability {cap.capability}: " + ("allowed" if cap.allowed else
                     f"forbidden ({cap.reason}); looked at again after {cap.recheck_after:%Y-%m-%d %H:%M}"))
    lines.extend(f"  ! {problem}" for problem in document["problems"])
    return lines


@click.command("status")
@click.option("--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(0.2, 3600),
              help="Seconds between refreshes.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON document (queues, jobs, backfills, search, penalty_box, budget, quota, "
                   "capabilities, problems).")
@click.pass_context
def status(ctx: click.Context, watch: bool, interval: float, as_json: bool) -> None:
    """Queue depths, jobs by status, recent backfills, songs waiting for the search indexer, the
    penalty box, the rate budget and what the app may call."""
    import time
    from contextlib import nullcontext

    if as_json and watch:
        raise UsageProblem("--json prints one document: use it without --watch (run it again to refresh)")
    settings = settings_of(ctx)
    with database(settings, pool_size=1) as engine, job_sender(settings) as (broker, _), \
            (redis_client(settings) if settings.redis_url else nullcontext()) as redis:
        try:
            while True:
                document = _status_document(settings, engine, broker, redis)
                if as_json:
                    echo_json(document)
                    return
                if watch:
                    click.clear()
                for line in _status_lines(document):
                    echo_line(line)
                if not watch:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
