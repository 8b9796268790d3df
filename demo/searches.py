"""The demo's last act: the search API over what the pipeline wrote, as the application calls it.

`spotify-sync serve` runs as a child process; the demo asks it for a song it has (by title and
artist), the same with a typo, a song only Spotify knows (enriched from Spotify and written to
songs for the next search), and then, with the Spotify emulator stopped, another song only Spotify
knows: the answer is the local one, marked degraded, within the wait. Each with its time.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

from pipeline.store import songs

Echo = Callable[[str], None]


def typo(text: str) -> str:
    """The text with two different neighbouring letters of its longest word swapped (a slip)."""
    words = text.split()
    longest = max(range(len(words)), key=lambda i: len(words[i]))
    word = words[longest]
    for i in range(max(1, len(word) // 2 - 1), len(word) - 1):
        if word[i] != word[i + 1]:
            words[longest] = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            break
    return " ".join(words)


class SearchApi:
    """The API served by a `spotify-sync serve` child process."""

    def __init__(self, base_url: str, token: str):
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def wait_ready(self, process: subprocess.Popen, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"spotify-sync serve exited with {process.returncode}")
            try:
                if self.http.get("/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"spotify-sync serve did not answer /ready within {timeout_s:.0f}s")

    def search(self, q: str, *, limit: int = 5, enrich: str = "auto") -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        response = self.http.get("/v1/search", params={"q": q, "limit": limit, "enrich": enrich})
        elapsed_ms = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        return response.json(), elapsed_ms

    def close(self) -> None:
        self.http.close()


def show(api: SearchApi, engine: Any, spotify_only: list[dict], stop_spotify: Callable[[], None] | None,
         echo: Echo) -> None:
    """Print the searches (see the module docstring). `spotify_only`: catalog tracks (name, artist)
    the songs table does not hold; `stop_spotify`: stops the emulator (None against the real one)."""
    [have] = songs.sample_enriched(engine, 1) or [None]
    echo("")
    echo("the search API (spotify-sync serve), as the application calls it")
    if have is not None:  # the application asks for the best match: the table answers alone
        title, artist = have[0], have[1]
        _print(echo, "a song the table has", f"{title} {artist}", *api.search(f"{title} {artist}", limit=1))
        _print(echo, "the same, with a typo", typo(f"{title} {artist}"), *api.search(typo(f"{title} {artist}"), limit=1))
    if spotify_only:
        q = f"{spotify_only[0]['name']} {spotify_only[0]['artist']}"
        _print(echo, "a song only Spotify knows", q, *api.search(q))
        # Enrichment finishes in the background when it outlasts the wait: the song lands in songs.
        deadline = time.monotonic() + 20
        while not api.search(q, enrich="never")[0]["items"] and time.monotonic() < deadline:
            time.sleep(0.5)
        _print(echo, "the same, again: now local", q, *api.search(q, limit=1))
    if stop_spotify is not None and len(spotify_only) > 1:
        stop_spotify()
        other = spotify_only[1]
        q = f"{other['name']} {other['artist']}"
        _print(echo, "Spotify down: another song only it knows", q, *api.search(q))


def _print(echo: Echo, label: str, q: str, answer: dict[str, Any], elapsed_ms: float) -> None:
    enrichment = answer.get("enrichment") or {}
    status = enrichment.get("status", "?") + (f" ({enrichment['reason']})" if enrichment.get("reason") else "")
    best = answer["items"][0] if answer.get("items") else None
    found = f"{best['title']} - {best['artist']}" if best else "nothing local yet"
    echo(f"  {label:<42} {q[:40]!r:<44} {elapsed_ms:6.0f} ms  enrichment {status:<28} best: {found[:60]}")
