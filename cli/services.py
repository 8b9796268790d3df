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
        click.echo(f"{name:<8} pid {info['pid']}  {'running' if info['running'] else 'stopped'}  {info['url']}")


@services.command("down")
@click.pass_context
def services_down(ctx: click.Context) -> None:
    """Stop the embedded services by PID."""
    from shared import services as embedded

    stopped = embedded.down(settings_of(ctx).state_dir)
    click.echo("stopped " + ", ".join(stopped) if stopped else "nothing was running")
