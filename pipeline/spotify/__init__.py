"""The Spotify Web API client: what the workers call.

    from pipeline.spotify import SpotifyClient, errors

    client = build_client(settings, redis, engine)   # pipeline/wiring.py; one per process
    client.get_tracks(ids)            -> dict[id, Track | None]     # batches of 50, or /tracks/{id}
    client.get_audio_features(ids)    -> dict[id, AudioFeatures | None]   # batches of 100
    client.get_track(id)              -> Track                      # NotFound if none
    client.search(q, limit=10)        -> Page[Track]
    client.interactive().search(q)    -> the same in the interactive lane: for a call someone waits on
                                      (the budget's reserved share, a 2 s wait at most)
    user = client.for_user(user_id)                                 # the user's token, refreshed once
    user.me()                         -> SpotifyUser
    user.saved_tracks(offset, limit)  -> Page[SavedTrack]; user.next_page(page) follows `next` verbatim
                                      (ForeignUrl if it is not under the API base URL)

Ids may be bare, `spotify:track:<id>` or open.spotify.com URLs; anything else raises InvalidId.

Errors are pipeline/errors.py's: RateLimited (park until `.blocked_until`, never sleep on it),
CapabilityForbidden (leave the columns empty with the reason; looked at again after
`.recheck_after`), InvalidGrant / NotConnected (the user must connect again), other permanent
SpotifyErrors (fail the job), transient ones (already retried for a few seconds inside the call;
retry the job later). `fetch_tracks` returns what it got before an error beside the error.
"""

from pipeline.spotify.client import SpotifyClient
from pipeline.spotify.ids import normalize_track_id, normalize_track_ids
from pipeline.spotify.models import Album, Artist, AudioFeatures, Page, SavedTrack, SpotifyUser, Track

__all__ = [
    "SpotifyClient", "TrackFetch", "normalize_track_id", "normalize_track_ids",
    "Album", "Artist", "AudioFeatures", "Page", "SavedTrack", "SpotifyUser", "Track",
]
