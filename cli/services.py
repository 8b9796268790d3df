"""`spotify-sync services`: the embedded PostgreSQL and Redis (up, status, down)."""

from __future__ import annotations

import click

from cli.common import WorkFailed, settings_of


@click.group()
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
        click.echo(f"{name:<8} pid {info['pid']}  {info['state']}  {info['url']}")


@services.command("down")
@click.pass_context
def services_down(ctx: click.Context) -> None:
    """Stop the embedded services `services up` started (checked by command line and start time)."""
    from shared import services as embedded

    state_dir = settings_of(ctx).state_dir
    report = embedded.down(state_dir)
    if report.stopped or not report.refused:
        click.echo("stopped " + ", ".join(report.stopped) if report.stopped else "nothing was running")
    if report.refused:
        raise WorkFailed(f"not signalling {' or '.join(report.refused)}: that PID now belongs to another process, "
                         f"not the one `services up` started; removed the stale {state_dir / embedded.STATE_FILE}")
