"""`spotify-sync worker`: Dramatiq's worker processes consuming the job queues."""

from __future__ import annotations

import os
import shutil
import sys

import click

from cli.common import UsageProblem, settings_of
from shared.jobtypes import QUEUES


@click.command("worker")
@click.option("--processes", "-p", default=2, show_default=True, type=click.IntRange(1, 256))
@click.option("--threads", "-t", default=8, show_default=True, type=click.IntRange(1, 1024))
@click.option("--queues", "-Q", multiple=True, type=click.Choice(QUEUES),
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
    from shared.settings import parse_duration_s

    settings = settings_of(ctx)
    settings.require_database_url()
    # The fleet's shared app token sits in Redis: never in plaintext (README, "Token encryption").
    settings.require_token_keys()
    settings.effective_broker_url  # noqa: B018 - fails now, with one line, rather than in every process
    try:
        shutdown_ms = parse_duration_s(shutdown_timeout) * 1000
    except ValueError as exc:
        raise UsageProblem(f"--shutdown-timeout: expected {exc}") from None
    # Before anything imports prometheus_client: every process of this run writes its values to
    # one fresh directory, which Dramatiq's exposition server reads (multiprocess mode).
    from shared.metrics_dir import make_metrics_dir

    metrics_dir = make_metrics_dir()
    os.environ.update({"PROMETHEUS_MULTIPROC_DIR": metrics_dir, "dramatiq_prom_db": metrics_dir,
                       "dramatiq_prom_port": str(metrics_port), "dramatiq_prom_host": metrics_host})
    # httpcore is imported here, once, before Dramatiq forks the worker processes, rather than in
    # each of them as it boots (httpx imports it at its first client; with it anyio and trio,
    # whichever are installed): a second or more of every process's start-up on a busy 2-core host.
    import httpcore  # noqa: F401
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    from workers.setup import route_stdlib_logging
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
