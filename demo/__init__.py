"""The main job in one command (`make demo` -> `spotify-sync demo`).

On a fresh machine with nothing configured it brings up what is missing (embedded PostgreSQL and
Redis, the Spotify emulator), migrates, connects a demo user through the real OAuth flow,
enqueues a backfill, that user's library and a popularity refresh, runs worker processes until
the ledger says every job has finished while it shows progress, prints a summary and a sample of
the enriched songs, and stops everything it started.

It drives the system the way an operator does: through the `spotify-sync` commands, as child
processes, so the demo proves the commands and not a shortcut around them. With
SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET set it runs against the real Spotify instead.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from demo import searches
from pipeline.store import ledger, search_index, songs
from shared import migrate
from shared import services as embedded
from shared.crypto import generate_key
from shared.db import make_engine
from shared.settings import Rate, Settings

Echo = Callable[[str], None]

DEMO_USER = "demo"
# The emulator's rolling 30 s window, and our fleet budget a little under it: the demo shows the
# limiter keeping the pipeline just below Spotify's limit, with zero 429s.
EMULATOR_WINDOW_LIMIT = 300
DEMO_RATE = Rate(280, 30)


class DemoFailed(Exception):
    """A step of the demo failed; the message says which and why."""


@dataclass(frozen=True)
class DemoPlan:
    tracks: int = 10_000
    workers: int = 2
    threads: int = 8
    library_size: int = 2_000
    existing_songs: int = 500  # (emulator) songs the application had before, for the popularity refresh
    timeout_s: int = 600


@dataclass
class Progress:
    jobs_total: int = 0
    jobs_finished: int = 0
    jobs_failed: int = 0
    parked: int = 0
    songs_synced: int = 0
    api_requests: int | None = None
    rate_limited: int | None = None

    def line(self, elapsed_s: float) -> str:
        rate = self.songs_synced / elapsed_s if elapsed_s > 0 else 0.0
        requests = "-" if self.api_requests is None else f"{self.api_requests:,}"
        limited = "-" if self.rate_limited is None else f"{self.rate_limited:,}"
        return (f"jobs {self.jobs_finished:,}/{self.jobs_total:,}  tracks/s {rate:,.0f}  "
                f"API requests {requests}  429s {limited}  parked {self.parked:,}  "
                f"failed {self.jobs_failed:,}  [{elapsed_s:,.0f}s]")


def run(settings: Settings, echo: Echo, plan: DemoPlan = DemoPlan()) -> None:
    started = time.monotonic()
    with ExitStack() as stack:
        settings = _services(settings, stack, echo)
        settings, emulator = _spotify(settings, stack, echo, plan)
        emulator_url = emulator.base_url if emulator else None
        # A bearer token for the search API the demo ends with (the application's, in real life).
        settings = settings.replace(api_tokens=settings.api_tokens or (secrets.token_urlsafe(24),))
        database_url = settings.require_database_url()
        migrate.upgrade(database_url)
        echo(f"database migrated to {migrate.current(database_url)}")
        engine = make_engine(settings)
        stack.callback(engine.dispose)
        since = ledger.db_now(engine)
        cli = _Cli(settings)

        cli.run("connect", "--user", DEMO_USER,
                *(["--open-with-http", "--emulated-user", DEMO_USER] if emulator_url else []), echo=echo)
        if emulator_url:
            _seed_existing_songs(engine, emulator_url, plan, echo)
        ids_file = _backfill_ids(engine, emulator_url, plan, stack)
        if ids_file:
            cli.run("enqueue", "track-sync", "--ids-file", str(ids_file), echo=echo)
        cli.run("enqueue", "user-library", "--user", DEMO_USER, echo=echo)
        cli.run("enqueue", "popularity-update", "--older-than", "1h", "--limit", str(plan.tracks), echo=echo)

        metrics_port = _free_port()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        workers = cli.start("worker", "--processes", str(plan.workers), "--threads", str(plan.threads),
                            "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1")
        stack.callback(_stop, workers)
        echo(f"{plan.workers} worker processes x {plan.threads} threads started; metrics at {metrics_url}")
        progress = _watch(engine, metrics_url, since, started, workers, echo, plan.timeout_s)
        _stop(workers)
        _summary(engine, emulator_url, since, progress, time.monotonic() - started, echo)
        _searches(settings, engine, cli, emulator, stack, echo)


# --- bringing things up -------------------------------------------------------------------------


def _services(settings: Settings, stack: ExitStack, echo: Echo) -> Settings:
    if settings.database_url and settings.redis_url:
        echo("using DATABASE_URL and REDIS_URL")
        return settings
    already = embedded.read_state(settings.state_dir)
    try:
        embedded.up(settings.state_dir)
    except embedded.ServicesError as exc:
        raise DemoFailed(str(exc)) from None
    if not already:  # stop only what the demo started
        stack.callback(embedded.down, settings.state_dir)
    echo(f"embedded PostgreSQL and Redis running under {settings.state_dir}")
    return settings.with_embedded_services()


def _spotify(settings: Settings, stack: ExitStack, echo: Echo, plan: DemoPlan) -> tuple[Settings, Any]:
    """The real Spotify when credentials are set; else the emulator, started here."""
    keys = settings.spotify_token_keys or (_demo_key(settings.state_dir),)
    if settings.spotify_client_id and settings.spotify_client_secret:
        echo(f"using the real Spotify at {settings.spotify_api_base_url}")
        return settings.replace(spotify_token_keys=keys), None

    from emulator.config import EmulatorConfig
    from emulator.server import start_subprocess

    config = EmulatorConfig(rate_limit=EMULATOR_WINDOW_LIMIT, library_sizes={DEMO_USER: plan.library_size})
    emulator = start_subprocess(config)
    stack.callback(emulator.stop)
    explicit_rate = "SPOTIFY_RATE_LIMIT" in os.environ
    return settings.replace(
        spotify_api_base_url=emulator.base_url + "/v1",
        spotify_accounts_base_url=emulator.base_url,
        spotify_client_id="spotify-sync-demo",
        spotify_client_secret=secrets.token_urlsafe(24),
        spotify_redirect_uri=f"http://127.0.0.1:{_free_port()}/callback",
        spotify_rate_limit=settings.spotify_rate_limit if explicit_rate else DEMO_RATE,
        spotify_token_keys=keys,
    ), emulator


def _demo_key(state_dir: Path) -> str:
    """A token key kept under the state folder, so the demo's stored tokens read back next run."""
    path = Path(state_dir) / "demo-token.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(generate_key())
    return path.read_text().strip()


def _seed_existing_songs(engine: Engine, emulator_url: str, plan: DemoPlan, echo: Echo) -> None:
    """Songs the existing application already has: a Spotify id and nothing from Spotify yet,
    so the popularity refresh (stalest first) has something to do. Kept across runs."""
    response = httpx.get(f"{emulator_url}/_emulator/ids",
                         params={"count": plan.existing_songs, "offset": plan.tracks}, timeout=30)
    response.raise_for_status()
    added = songs.add_placeholder_songs(engine, response.json()["ids"], "The existing application")
    if added:
        echo(f"  {added} songs of the existing application added (Spotify ids, no Spotify data yet)")


def _backfill_ids(engine: Engine, emulator_url: str | None, plan: DemoPlan, stack: ExitStack) -> Path | None:
    """Ids to backfill: the emulator's catalog, or (real Spotify) the songs already known."""
    if emulator_url:
        response = httpx.get(f"{emulator_url}/_emulator/ids", params={"count": plan.tracks}, timeout=30)
        response.raise_for_status()
        ids = response.json()["ids"]
    else:
        ids = songs.known_spotify_ids(engine, plan.tracks)
    if not ids:
        return None
    handle = tempfile.NamedTemporaryFile("w", prefix="demo-ids-", suffix=".txt", delete=False)
    stack.callback(os.unlink, handle.name)
    with handle:
        handle.write("\n".join(ids) + "\n")
    return Path(handle.name)


class _Cli:
    """Runs `spotify-sync ...` as a child process with the demo's settings in its environment."""

    def __init__(self, settings: Settings):
        self.env = {**{k: v for k, v in os.environ.items() if k not in _setting_names()}, **settings.as_environ()}

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "cli", *args]

    def run(self, *args: str, echo: Echo) -> None:
        result = subprocess.run(self._argv(args), env=self.env, capture_output=True, text=True,
                                cwd=_project_root(), timeout=300)
        for line in result.stdout.strip().splitlines():
            echo(f"  {line}")
        if result.returncode != 0:
            raise DemoFailed(f"`spotify-sync {' '.join(args[:2])}` failed: {result.stderr.strip()[-500:]}")

    def start(self, *args: str) -> subprocess.Popen:
        log = tempfile.NamedTemporaryFile("w+", prefix="demo-worker-", suffix=".log", delete=False)
        return subprocess.Popen(self._argv(args), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=_project_root(), start_new_session=True)


def _setting_names() -> set[str]:
    from shared.settings import known_env_vars

    return known_env_vars()


def _project_root() -> str:
    return str(Path(__file__).resolve().parent.parent)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stop(process: subprocess.Popen) -> None:
    """Dramatiq's clean shutdown: SIGTERM to the worker's process group, then wait."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_indexed(engine: Engine, timeout_s: float = 30) -> None:
    """Until the search indexer (the API's, now the workers are gone) has drained what the
    pipeline wrote in its last second."""
    deadline = time.monotonic() + timeout_s
    while search_index.installed(engine) and search_index.queued(engine) and time.monotonic() < deadline:
        time.sleep(0.1)


def _searches(settings: Settings, engine: Engine, cli: _Cli, emulator: Any, stack: ExitStack, echo: Echo) -> None:
    """Serve the API and show a few searches through it (demo/searches.py), the last one with
    the Spotify emulator stopped."""
    port = _free_port()
    server = cli.start("serve", "--host", "127.0.0.1", "--port", str(port))
    stack.callback(_stop, server)
    api = searches.SearchApi(f"http://127.0.0.1:{port}", settings.api_tokens[0])
    stack.callback(api.close)
    api.wait_ready(server)
    _wait_indexed(engine)
    spotify_only: list[dict] = []
    if emulator is not None:  # catalog tracks the pipeline did not write: only "Spotify" knows them
        found = httpx.get(f"{emulator.base_url}/_emulator/tracks", params={"offset": 95_000, "count": 20},
                          timeout=30).json()["tracks"]
        spotify_only = [{"name": t["name"], "artist": t["artists"][0]} for t in found
                        if songs.get_song(engine, t["id"]) is None][:2]
    searches.show(api, engine, spotify_only, emulator.stop if emulator is not None else None, echo)
    _stop(server)


# --- watching and reporting ---------------------------------------------------------------------


def _progress(engine: Engine, metrics_url: str, since, previous: Progress | None) -> Progress:
    jobs = ledger.jobs_since(engine, since)
    progress = Progress(jobs_total=jobs.total, jobs_finished=jobs.finished, jobs_failed=jobs.failed,
                        parked=jobs.parked, songs_synced=songs.songs_written(engine, since).synced_since)
    # Requests and 429s come from the workers' own metrics, so they mean the same against Spotify.
    counters = _scrape(metrics_url)
    if counters is not None:
        progress.api_requests = int(counters.get("spotify_requests_total", 0))
        progress.rate_limited = int(counters.get("spotify_rate_limited_total", 0))
    elif previous is not None:
        progress.api_requests, progress.rate_limited = previous.api_requests, previous.rate_limited
    return progress


def _scrape(metrics_url: str) -> dict[str, float] | None:
    """Each counter's total over its labels, from the workers' metrics endpoint."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        body = httpx.get(metrics_url, timeout=5).text
    except httpx.HTTPError:
        return None  # not up yet
    return {family.name + "_total" if family.type == "counter" else family.name:
            sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
            for family in text_string_to_metric_families(body)}


def _emulator_stats(emulator_url: str) -> dict:
    try:
        return httpx.get(f"{emulator_url}/_emulator/stats", timeout=5).json()
    except httpx.HTTPError:
        return {}


def _watch(engine: Engine, metrics_url: str, since, started: float, workers: subprocess.Popen,
           echo: Echo, timeout_s: int) -> Progress:
    """Show progress until every job the demo created has finished."""
    tty = sys.stdout.isatty()
    last_print = 0.0
    progress = None
    while True:
        progress = _progress(engine, metrics_url, since, progress)
        elapsed = time.monotonic() - started
        done = progress.jobs_total > 0 and progress.jobs_finished == progress.jobs_total
        if tty:
            sys.stdout.write("\r\x1b[2K" + progress.line(elapsed))
            sys.stdout.flush()
        elif done or elapsed - last_print >= 5:
            echo(progress.line(elapsed))
            last_print = elapsed
        if done:
            if tty:
                sys.stdout.write("\n")
            return progress
        if workers.poll() is not None:
            raise DemoFailed(f"the workers exited with {workers.returncode} before the work was done")
        if elapsed > timeout_s:
            raise DemoFailed(f"the work did not finish within {timeout_s}s: {progress.line(elapsed)}")
        time.sleep(0.5)


def _summary(engine: Engine, emulator_url: str | None, since, progress: Progress, elapsed_s: float,
             echo: Echo) -> None:
    counted = songs.songs_written(engine, since)
    written, total = counted.written_since, counted.total
    sample = songs.sample_enriched(engine, 8)
    echo("")
    echo("summary")
    echo(f"  jobs          {progress.jobs_finished:,} finished ({progress.jobs_failed:,} failed)")
    echo(f"  songs written {written:,} this run ({total:,} in the table)")
    echo(f"  API requests  {progress.api_requests or 0:,}  (429s: {progress.rate_limited or 0:,})")
    if emulator_url:  # the emulator also says how full each batch request was
        for endpoint, batch in sorted(_emulator_stats(emulator_url).get("batch_ids", {}).items()):
            if batch.get("requests"):
                echo(f"  ids/request   {endpoint}: {batch['ids_per_request']} over {batch['requests']:,} requests")
    echo(f"  time taken    {elapsed_s:,.1f} s")
    echo("")
    echo("a sample of the enriched songs table")
    header = ("title", "artist", "popularity", "dance", "energy", "tempo", "spotifyId")
    rows = [header] + [tuple("" if v is None else str(v) for v in row) for row in sample]
    widths = [min(28, max(len(r[i]) for r in rows)) for i in range(len(header))]
    for row in rows:
        echo("  " + "  ".join(cell[:widths[i]].ljust(widths[i]) for i, cell in enumerate(row)))
