"""Under the dev-2026 tier: batch /tracks and /audio-features answer 403. The client learns it
once, records it, fetches tracks one by one and never calls a forbidden endpoint again."""

import pytest
from sqlalchemy import select

from pipeline.errors import CapabilityForbidden
from pipeline.wiring import build_client
from shared.models import SpotifyCapability
from shared.settings import Rate
from tests.integration.spotify.conftest import pointed_at

pytestmark = pytest.mark.integration


def test_dev_2026_learns_its_capabilities_and_falls_back(settings, clean_db, start_emulator):
    emulator = start_emulator(tier="dev-2026", rate_limit=None)
    settings = pointed_at(settings, emulator, spotify_rate_limit=Rate(10_000, 1))
    ids = emulator.ids(500)
    client = build_client(settings, engine=clean_db)

    tracks = client.get_tracks(ids)
    assert list(tracks) == ids and all(t is not None and t.id == i for i, t in tracks.items())
    assert all(t.popularity is None for t in tracks.values())  # the tier leaves it out
    with pytest.raises(CapabilityForbidden) as caught:
        client.get_audio_features(ids)
    assert caught.value.recheck_after is not None

    # Asked again: no request to a forbidden endpoint.
    assert client.get_tracks(ids[:60]) == {i: tracks[i] for i in ids[:60]}
    with pytest.raises(CapabilityForbidden):
        client.get_audio_features(ids[:10])
    # And a new process (a fresh client) knows it from the table.
    fresh = build_client(settings, engine=clean_db)
    fresh.get_tracks(ids[:5])
    with pytest.raises(CapabilityForbidden):
        fresh.get_audio_features(ids[:5])

    requests = emulator.stats()["requests"]
    assert requests["/v1/tracks"] == {"403": 1}
    assert requests["/v1/audio-features"] == {"403": 1}
    assert requests["/v1/tracks/{id}"] == {"200": 500 + 60 + 5}
    with clean_db.begin() as session:
        rows = {r.capability: r for r in session.scalars(select(SpotifyCapability))}
    assert {c: (r.client_id, r.allowed) for c, r in rows.items()} == {
        "batch_tracks": (settings.spotify_client_id, False),
        "audio_features": (settings.spotify_client_id, False),
        "popularity": (settings.spotify_client_id, False),
    }
    assert all(r.recheck_after is not None and (r.recheck_after - r.learned_at).total_seconds() == 86400
               for r in rows.values())
