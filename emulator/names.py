"""Names for the synthetic catalog, with the variety real music has, so search can be measured.

Real catalogs are full of what trips up a search: accents ("Beyoncé", "Sigur Rós"), punctuation
("AC/DC", "Guns N' Roses", "(feat. ...)"), non-Latin scripts (Japanese, Cyrillic, Greek, Hangul)
and the same common words everywhere ("Love", "The"). Every name here is a pure function of a
digest (32 bytes from `catalog._digest`), so the same index always gets the same name.

Byte positions read: artist 0..2, album 6, 7 and 28..31, track 5..7 and 20..24 (the track's
20..24 are also part of its preview URL's hex: harmless, both are only meant to look random).
"""

from __future__ import annotations

# Artists a search test will look for by name; the first artists of a catalog are these, once each.
WELL_KNOWN_ARTISTS = (
    "Beyoncé", "Sigur Rós", "AC/DC", "Guns N' Roses", "Björk", "Mötley Crüe", "Motörhead",
    "The Beatles", "The The", "Love", "Queen", "Café Tacvba", "Maná", "Zoé", "Rosalía",
    "Héroes del Silencio", "Ólafur Arnalds", "Édith Piaf", "Françoise Hardy", "Sinéad O'Connor",
    "Florence + The Machine", "Earth, Wind & Fire", "Panic! at the Disco", "P!nk", "will.i.am",
    "N.W.A", "Simon & Garfunkel", "Jay-Z", "Røyksopp", "Dvořák Ensemble", "Mø",
    "宇多田ヒカル", "米津玄師", "YOASOBI", "坂本龍一", "Кино", "Земфира", "ДДТ", "Πυξ Λαξ",
    "Μίκης Θεοδωράκης", "방탄소년단", "Los Ángeles Azules", "Die Ärzte", "Tiësto",
)
_ADJECTIVES = (
    "Velvet Golden Broken Silent Electric Midnight Crystal Wild Hollow Neon Paper Burning "
    "Frozen Lonely Sweet Distant Purple Restless Gentle Savage Quiet Endless Falling Rising"
).split()
_NOUNS = (
    "Morning Heart River Highway Dream Fire Ocean Shadow Summer Mirror Garden Thunder City "
    "Letter Horizon Window Echo Signal Harbor Ghost Machine Daylight Avenue Satellite"
).split()
_FIRST = (
    "Nova Luna Echo Milo Ivy Juno Otis Aria Felix Nina Rex Zara Leo Maya Hugo Iris "
    "José Zoë Renée Chloé Anaïs Søren Łukasz Núria Inés Jürgen Åsa François"
).split()
_LAST = (
    "Park Rivers Stone Vale Cruz Lind Moreau Sato Okafor Berg Novak Quinn Reyes Holm "
    "Müller Núñez Ødegaard Brontë Dvořák Gómez Lefèvre Öztürk"
).split()
_BANDS = "Collective Orchestra Brothers Club Society Machine Parade Union Kids Saints".split()
_FOREIGN_ARTISTS = (
    "Алина Морозова", "Сергей Волков", "Группа Север", "Ελένη Παππά", "Νίκος Αλεξίου",
    "山田花子", "月と星", "東京スカイ", "김하늘", "소녀시대",
)
_FOREIGN_TITLES = (
    "夜に駆ける", "さくら", "東京の夜", "月光", "愛してる", "Звезда по имени Солнце", "Кукушка",
    "Группа крови", "Любовь", "Ночь", "Αγάπη μου", "Η θάλασσα", "Σ' αγαπώ", "사랑해", "봄날",
)
_ACCENTED_TITLES = (
    "Café del Mar", "Déjà Vu", "Señorita", "Für Elise", "Niño", "Crème Brûlée", "Über Alles",
    "São Paulo", "Jóga", "Hoppípolla", "Ça plane pour moi", "Mañana", "Résumé",
)
_PUNCTUATED_TITLES = (
    "Don't Stop Me Now", "Rock 'n' Roll Ain't Noise Pollution", "Mr. Brightside", "Hey Ya!",
    "Sweet Child O' Mine", "Back In Black", "Highway to Hell", "I Can't Get No", "What's Up?",
    "99 Luftballons", "1979", "Ex's & Oh's", "Wake Me Up (Before You Go-Go)",
)
_SUFFIXES = (" - Remastered", " - Remastered 2011", " - Live", " (Radio Edit)", " - Acoustic")


def _pick(pool: tuple[str, ...] | list[str], byte: int) -> str:
    return pool[byte % len(pool)]


def artist_name(index: int, d: bytes) -> str:
    """Artist `index`'s name: the well-known ones first, then bands, people and foreign names."""
    if index < len(WELL_KNOWN_ARTISTS):
        return WELL_KNOWN_ARTISTS[index]
    if d[0] < 80:
        return f"The {_pick(_ADJECTIVES, d[1])} {_pick(_BANDS, d[2])}"  # "The" everywhere, as in life
    if d[0] < 110:
        return f"{_pick(_FIRST, d[1])} & the {_pick(_BANDS, d[2])}"
    if d[0] < 130:
        return _pick(_FOREIGN_ARTISTS, d[1])
    return f"{_pick(_FIRST, d[1])} {_pick(_LAST, d[2])}"


def album_name(d: bytes, artist: str) -> str:
    kind = d[29]
    if kind < 20:
        return artist  # self-titled
    if kind < 35:
        return "Greatest Hits" if d[30] & 1 else f"Live at the {_pick(_NOUNS, d[31])}"
    if kind < 50:
        return _pick(_FOREIGN_TITLES, d[30])
    if kind < 70:
        return f"Love {_pick(_NOUNS, d[30])}"
    return f"{_pick(_NOUNS, d[6])} of {_pick(_ADJECTIVES, d[7])} {_pick(_NOUNS, d[28])}s"


def track_name(d: bytes, featured: str | None) -> str:
    """A track's name; `featured` (a second artist's name) is credited as Spotify does: "(feat. X)"."""
    kind = d[20]
    if kind < 20:
        name = _pick(_FOREIGN_TITLES, d[21])
    elif kind < 40:
        name = _pick(_ACCENTED_TITLES, d[21])
    elif kind < 60:
        name = _pick(_PUNCTUATED_TITLES, d[21])
    elif kind < 90:
        name = (f"Love {_pick(_NOUNS, d[6])}", f"{_pick(_NOUNS, d[6])} of Love", "I Love You",
                f"The {_pick(_NOUNS, d[6])}")[d[22] % 4]
    else:
        name = f"{_pick(_ADJECTIVES, d[5])} {_pick(_NOUNS, d[6])}"
    if featured is not None and d[23] < 192:
        name += f" (feat. {featured})"
    if d[7] < 25:
        name += _pick(_SUFFIXES, d[24])
    return name
