"""Songs with tricky names in the test database (real PostgreSQL), and helpers to insert more."""

from __future__ import annotations

import secrets
import string

import pytest
from sqlalchemy import text

from pipeline.store import search_index

ALPHABET = string.ascii_letters + string.digits

# (title, artist, album, popularity)
TRICKY = [
    ("Halo", "Beyoncé", "I Am... Sasha Fierce", 80),
    ("Crazy in Love", "Beyoncé", "Dangerously in Love", 85),
    ("Halo", "Lovebugs", "Naked", 20),
    ("Halo Theme", "Martin O'Donnell", "Halo", 40),
    ("Highway to Hell", "AC/DC", "Highway to Hell", 85),
    ("Back in Black", "AC/DC", "Back in Black", 83),
    ("Hells Bells", "AC/DC", "Back in Black", 70),
    ("Losing My Religion", "R.E.M.", "Out of Time", 78),
    ("Don't Stop Me Now", "Queen", "Jazz", 88),
    ("Bohemian Rhapsody", "Queen", "A Night at the Opera", 90),
    ("Bohemian Like You", "The Dandy Warhols", "Thirteen Tales", 60),
    ("Hoppípolla", "Sigur Rós", "Takk...", 55),
    ("Ace of Spades", "Motörhead", "Ace of Spades", 72),
    ("Sweet Child O' Mine", "Guns N’ Roses", "Appetite for Destruction", 86),
    ("Straße", "Ørsted & Søn", "Æther", 10),
    ("100% Pure Love", "Crystal Waters", "Storyteller", 50),
    ("under_score", "Test_Artist", None, 5),
    ("Кино", "Виктор Цой", "Группа крови", 30),
]


def spotify_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(22))


def insert_songs(engine, rows) -> None:
    """As the application writes songs (plain SQL), then what the search indexer does within a second."""
    with engine.begin() as conn:
        conn.execute(
            text('INSERT INTO songs ("spotifyId", title, artist, album, "spotifyPopularity") '
                 "VALUES (:sid, :title, :artist, :album, :pop)"),
            [{"sid": spotify_id(), "title": t, "artist": a, "album": al, "pop": p} for t, a, al, p in rows],
        )
    if search_index.installed(engine):  # not before the search migrations
        search_index.drain_all(engine)


def filler(count: int) -> list[tuple[str, str, str, int]]:
    """Unremarkable songs, so that the tricky ones are found among hundreds."""
    words = ["river", "night", "summer", "golden", "electric", "paper", "silver", "ocean", "fire", "dream"]
    return [(f"{words[n % 10].title()} {words[(n // 10) % 10]} {n}", f"Band {n % 37}", f"Album {n % 11}", n % 100)
            for n in range(count)]


@pytest.fixture
def songs(clean_db):
    insert_songs(clean_db, TRICKY + filler(400))
    return clean_db
