"""`spotify-sync serve`: the HTTP API (api/) under uvicorn."""

from __future__ import annotations

import os
import shutil
import tempfile

import click

from cli.common import settings_of


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes (Prometheus multiprocess mode when more than one).")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the API: /v1/search, /v1/songs/{id}, /health, /ready, /metrics, /docs.

    Callers send `Authorization: Bearer <one of API_TOKENS>`. uvicorn's access log is off: the
    API logs one line per request itself, without the query string.
    """
    settings = settings_of(ctx)
    settings.require_api_tokens()
    settings.require_database_url()
    settings.require_redis_url()
    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Before anything imports prometheus_client: every process writes its values here and
        # /metrics, in whichever process answers, merges them.
        metrics_dir = tempfile.mkdtemp(prefix="spotify-sync-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    import uvicorn

    try:
        uvicorn.run("api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    access_log=False, log_config=None, server_header=False, timeout_graceful_shutdown=10)
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
