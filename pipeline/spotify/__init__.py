"""The Spotify Web API client: what the workers call.

    from pipeline.spotify import SpotifyClient, errors

    client = SpotifyClient.from_settings(settings, redis, engine)   # one per process; app token
    client.get_tracks(ids)            -> dict[id, Track | None]     # batches of 50, or /tracks/{id}
    client.get_audio_features(ids)    -> dict[id, AudioFeatures | None]   # batches of 100
    client.get_track(id)              -> Track                      # NotFound if none
    client.search(q, limit=10)        -> Page[Track]
    user = client.for_user(user_id)                                 # the user's token, refreshed once
    user.me()                         -> SpotifyUser
    user.saved_tracks(offset, limit)  -> Page[SavedTrack]; user.next_page(page) follows `next` verbatim
                                      (ForeignUrl if it is not under the API base URL)

Ids may be bare, `spotify:track:<id>` or open.spotify.com URLs; anything else raises InvalidId.

Errors (pipeline/spotify/errors.py) carry `.permanent`:
- RateLimited: park the job until `.blocked_until` (epoch s, Redis clock; or `.retry_after_s`
  from now). Never sleep on it. It must not use up the job's retries.
- CapabilityForbidden (from get_audio_features when the app may not call it): leave the columns
  empty with `.reason`; it is looked at again after `.recheck_after`.
- InvalidGrant / NotConnected: the user must connect again; fail the user's jobs at once.
- other permanent ones (NotFound, BadRequest, Forbidden): fail the job.
- transient ones (ServerError, NetworkError, MalformedResponse, LimiterUnavailable,
  Unauthorized): already retried for a few seconds inside the call; retry the job later.
"""

from pipeline.spotify import errors
from pipeline.spotify.client import SpotifyClient
from pipeline.spotify.ids import normalize_track_id, normalize_track_ids
from pipeline.spotify.models import Album, Artist, AudioFeatures, Page, SavedTrack, SpotifyUser, Track

__all__ = [
    "SpotifyClient", "errors", "normalize_track_id", "normalize_track_ids",
    "Album", "Artist", "AudioFeatures", "Page", "SavedTrack", "SpotifyUser", "Track",
]
