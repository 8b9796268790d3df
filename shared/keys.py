"""Every Redis key name the project uses, in one place.

All keys live under the settings' namespace (REDIS_NAMESPACE, default "spotify-sync"), so a test
run, a second deployment or the emulator can share one Redis without touching each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RedisKeys:
    namespace: str

    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def pattern(self) -> str:
        """Matches every key of this namespace (for clean-up)."""
        return self.namespace + ":*"

    # --- the fleet's rate control (pipeline/ratecontrol/limiter.py, penalty_box.py) ---
    def rate_bucket(self, client_id: str) -> str:
        return self._key("rate", client_id)

    def penalty_box(self, client_id: str) -> str:
        return self._key("penalty", client_id)

    def quota_box(self, developer_account: str) -> str:
        """Shut when Spotify says the quota is spent: shared by every client id of the account."""
        return self._key("quota", developer_account)

    def learned_budget(self, client_id: str) -> str:
        """The fleet's learned budget (SPOTIFY_RATE_LIMIT=auto; a hash, PostgreSQL keeps a copy)."""
        return self._key("rate-learned", client_id)

    def rate_refused(self, client_id: str) -> str:
        """When Spotify answered a window 429 (a sorted set): the learned budget's measure of the limit."""
        return self._key("rate-refused", client_id)

    def return_line(self, client_id: str) -> str:
        """The next free return slot of parked work (pipeline/ratecontrol/pacer.py)."""
        return self._key("return-line", client_id)

    # --- the client-credentials token shared by the fleet (pipeline/auth/app_token.py) ---
    def app_token(self, client_id: str) -> str:
        return self._key("app-token", client_id)

    def app_token_lock(self, client_id: str) -> str:
        return self._key("app-token-lock", client_id)

    # --- what the app may call (pipeline/capabilities.py); the rows themselves are in Postgres ---
    def capabilities_version(self, client_id: str) -> str:
        """A fresh random value after every capability row written: a process whose loaded
        version differs reads the rows again."""
        return self._key("capabilities-version", client_id)

    def capability_probe(self, client_id: str, capability: str) -> str:
        """Held (SET NX, short expiry) by the one caller that tries a forbidden capability again."""
        return self._key("capability-probe", client_id, capability)

    # --- the dispatcher (workers/dispatcher.py) ---
    def dispatcher_turn(self) -> str:
        """Held (SET NX, shorter than a tick) by the one worker process that dispatches this tick."""
        return self._key("dispatcher-turn")

    def broker_epoch(self) -> str:
        """Set once in the broker's Redis: missing again means that Redis lost its messages."""
        return self._key("broker-epoch")

    # --- search enrichment (api/enrichment.py) ---
    def search_cache(self, query_digest: str) -> str:
        """Spotify's answer to one search (the track rows in it), kept TRACK_TTL."""
        return self._key("search-cache", query_digest)

    def search_circuit(self, client_id: str) -> str:
        """A hash {failures, open_until}: Spotify searches failing for every API instance."""
        return self._key("search-circuit", client_id)

    # --- users connecting Spotify in their browser (pipeline/auth/web_flow.py) ---
    def oauth_state(self, state_id: str) -> str:
        """One pending authorisation (user, PKCE verifier, where to return), single use, 10 minutes."""
        return self._key("oauth-state", state_id)

    # --- Dramatiq (workers/broker.py): its own keys live under this prefix ---
    def dramatiq_namespace(self) -> str:
        return self._key("dramatiq")
