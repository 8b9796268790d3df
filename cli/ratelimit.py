"""`spotify-sync ratelimit show|clear`: what the fleet has learned about Spotify's limits for the
client id (the penalty box, the quota box, the budget, the capabilities), and forgetting it, for
when Spotify support lifts a block. One line per thing, or `--json`."""

from __future__ import annotations

import click

from cli.common import database, echo_json, echo_line, redis_client, settings_of

THINGS = ("penalty", "quota", "budget", "capabilities")


@click.group("ratelimit")
def ratelimit() -> None:
    """What the fleet learned about Spotify's limits, and forgetting it."""


@ratelimit.command("show")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: client_id, developer_account, "
              "penalty_box, quota, budget, capabilities.")
@click.pass_context
def show(ctx: click.Context, as_json: bool) -> None:
    """The penalty box, the quota box, the budget and the capabilities of SPOTIFY_CLIENT_ID."""
    from pipeline.ratecontrol import report
    from pipeline.store.capabilities import PostgresCapabilityRows

    settings = settings_of(ctx)
    client_id, _ = settings.require_client_credentials()
    with database(settings, pool_size=1) as engine, redis_client(settings) as redis:
        limits = report.read(settings, redis, engine)
        capabilities = sorted(PostgresCapabilityRows(engine).load(client_id).values(), key=lambda s: s.capability)
    if as_json:
        echo_json({**report.as_document(limits), "capabilities": capabilities})
        return
    echo_line(f"client id {limits.client_id}:")
    for line in report.as_lines(limits):
        echo_line("  " + line)
    for cap in capabilities:
        echo_line(f"  capability {cap.capability}: " + ("allowed" if cap.allowed else f"forbidden ({cap.reason})"))
    if not capabilities:
        echo_line("  capabilities: nothing learned")


@ratelimit.command("clear")
@click.option("--only", "only", type=click.Choice(THINGS), multiple=True,
              help="Clear only this (repeatable); default: all four.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: what was cleared, how many records.")
@click.pass_context
def clear(ctx: click.Context, only: tuple[str, ...], as_json: bool) -> None:
    """Forget what the fleet learned: the boxes open now, a learned budget starts again, the
    capabilities are learned again from Spotify's next answers."""
    from pipeline.ratecontrol import report

    settings = settings_of(ctx)
    settings.require_client_credentials()
    with database(settings, pool_size=1) as engine, redis_client(settings) as redis:
        cleared = report.clear(settings, redis, engine, only or THINGS)
    if as_json:
        echo_json({"cleared": cleared})
        return
    for thing, count in cleared.items():
        plural = "s" if count != 1 else ""
        echo_line(f"{thing}: cleared ({count} record{plural})" if count else f"{thing}: nothing to clear")
