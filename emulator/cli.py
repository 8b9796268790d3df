"""`spotify-sync emulator ...`: run the emulator, or print valid ids.

    spotify-sync emulator --host 127.0.0.1 --port 8900 --tier dev-2026 --rate-limit 100 \
        --faults "503:0.05,drop:0.01@/v1/tracks"
    spotify-sync emulator ids --count 100 [--offset 0] [--catalog-size N] [--catalog-seed S]

The root CLI mounts it with `root.add_command(emulator)`; `python -m emulator.cli` runs it alone.
"""

from __future__ import annotations

import json

import click

from emulator.catalog import Catalog
from emulator.config import CONSENT_MODES, TIERS, ConfigError, EmulatorConfig
from emulator.faults import FaultSpecError, parse_fault_spec

DEFAULTS = EmulatorConfig()


def _limit(value: str | None) -> int | None:
    if value is None or value.lower() in ("none", "off", "unlimited"):
        return None
    return int(value)


@click.group(name="emulator", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8900, show_default=True, type=int)
@click.option("--tier", type=click.Choice(TIERS), default=DEFAULTS.tier, show_default=True)
@click.option("--rate-limit", default=str(DEFAULTS.rate_limit), show_default=True,
              help="Requests per client id per rolling window; 'none' for no limit.")
@click.option("--window-s", type=float, default=DEFAULTS.rate_window_s, show_default=True)
@click.option("--penalty-s", type=float, default=DEFAULTS.penalty_s, show_default=True,
              help="Seconds added to the wait for every call made while limited.")
@click.option("--daily-quota", type=int, default=None, help="Admitted calls per day per client id.")
@click.option("--faults", default="", help='e.g. "503:0.05,slow:0.01@/v1/tracks,drop:0.02"')
@click.option("--slow-s", type=float, default=DEFAULTS.slow_s, show_default=True)
@click.option("--fault-seed", type=int, default=None)
@click.option("--catalog-size", type=int, default=DEFAULTS.catalog_size, show_default=True)
@click.option("--catalog-seed", default=DEFAULTS.catalog_seed, show_default=True)
@click.option("--access-token-ttl-s", type=float, default=DEFAULTS.access_token_ttl_s, show_default=True)
@click.option("--refresh-token-ttl-s", type=float, default=DEFAULTS.refresh_token_ttl_s, show_default=True)
@click.option("--consent", type=click.Choice(CONSENT_MODES), default=DEFAULTS.consent, show_default=True,
              help="/authorize: 'page' shows a consent page unless the query has emulated_user=; 'auto' never does.")
@click.option("--redis-url", default=None, help="Share state between emulator processes through Redis.")
@click.option("--redis-prefix", default=None, help="Key prefix in Redis (default emulator:<random>).")
@click.option("--config-json", default=None, help="Any EmulatorConfig fields as a JSON object.")
@click.option("--log-level", default="info", show_default=True)
@click.pass_context
def emulator(ctx: click.Context, host: str, port: int, log_level: str, config_json: str | None, **options) -> None:
    """Run the Spotify Web API emulator (accounts and API hosts, control API under /_emulator)."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        config = _config(options, config_json)
    except (ConfigError, FaultSpecError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from exc
    from emulator.server import serve  # uvicorn only when serving

    click.echo(f"Spotify emulator on http://{host}:{port} (tier {config.tier}, "
               f"rate limit {config.rate_limit}/{config.rate_window_s:g}s, catalog {config.catalog_size})")
    serve(config, host, port, log_level)


def _config(options: dict, config_json: str | None) -> EmulatorConfig:
    config = EmulatorConfig(
        tier=options["tier"],
        rate_limit=_limit(options["rate_limit"]),
        rate_window_s=options["window_s"],
        penalty_s=options["penalty_s"],
        daily_quota=options["daily_quota"],
        faults=parse_fault_spec(options["faults"]),
        slow_s=options["slow_s"],
        fault_seed=options["fault_seed"],
        catalog_size=options["catalog_size"],
        catalog_seed=options["catalog_seed"],
        access_token_ttl_s=options["access_token_ttl_s"],
        refresh_token_ttl_s=options["refresh_token_ttl_s"],
        consent=options["consent"],
        redis_url=options["redis_url"],
        redis_prefix=options["redis_prefix"],
    )
    if config_json:
        config = config.with_changes(json.loads(config_json))
    return config


@emulator.command("ids")
@click.option("--count", type=int, default=10, show_default=True)
@click.option("--offset", type=int, default=0, show_default=True, help="First catalog index.")
@click.option("--catalog-size", type=int, default=None, help="Default: the group's --catalog-size.")
@click.option("--catalog-seed", "--seed", default=None, help="Default: the group's --catalog-seed.")
@click.pass_context
def ids(ctx: click.Context, count: int, offset: int, catalog_size: int | None, catalog_seed: str | None) -> None:
    """Print valid track ids of the catalog, one per line."""
    parent = ctx.parent.params if ctx.parent else {}
    size = catalog_size or parent.get("catalog_size") or DEFAULTS.catalog_size
    seed = catalog_seed or parent.get("catalog_seed") or DEFAULTS.catalog_seed
    catalog = Catalog(size, seed)
    stop = min(size, offset + count)
    click.echo("\n".join(catalog.track_id(i) for i in range(max(0, offset), stop)))


if __name__ == "__main__":
    emulator()
