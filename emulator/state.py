"""EmulatorState: what one emulator process holds, and the config shared with its peers.

The running config lives in the store (key `config`), so `POST /_emulator/config` sent to one
process reaches every process on the same Redis prefix within CONFIG_POLL_S. With the memory
store there is one process and the change is immediate. The catalog is rebuilt when its size,
seed or audio-feature share changes.
"""

from __future__ import annotations

import threading
import time

import orjson

from emulator import keys as K
from emulator.catalog import Catalog
from emulator.config import EmulatorConfig
from emulator.faults import FaultDice, ForcedRule
from emulator.oauth import OAuth
from emulator.ratelimit import RateLimiter
from emulator.stats import Stats
from emulator.store import MemoryStore, Store, open_store

CONFIG_POLL_S = 0.5


class EmulatorState:
    def __init__(self, config: EmulatorConfig, store: Store | None = None) -> None:
        self.initial_config = config
        self.store = store or open_store(config.redis_url, config.redis_prefix)
        self._shared = not isinstance(self.store, MemoryStore)
        self._lock = threading.Lock()
        self.oauth = OAuth(self.store)
        self.limiter = RateLimiter(self.store)
        self.stats = Stats(self.store)
        self.dice = FaultDice(config.fault_seed)
        self._exhausted: set[str] = set()  # forced rules this process saw run out
        self._config = config
        self._raw = b""
        self._checked = 0.0
        self.catalog = self._build_catalog(config)
        if self.store.set_nx(K.CONFIG, orjson.dumps(config.to_json()).decode()):
            self._init_forced(config.forced)
        self._reload(force=True)

    # --- config ---
    @property
    def config(self) -> EmulatorConfig:
        if self._shared and time.monotonic() - self._checked > CONFIG_POLL_S:
            self._reload()
        return self._config

    def _reload(self, force: bool = False) -> None:
        self._checked = time.monotonic()
        raw = (self.store.get(K.CONFIG) or "").encode()
        if raw and (force or raw != self._raw):
            self._adopt(EmulatorConfig.from_json(orjson.loads(raw)) if raw else self._config)
            self._raw = raw

    def _adopt(self, config: EmulatorConfig) -> None:
        config = _keep_process_fields(config, self.initial_config)
        old = self._config
        if _catalog_fields(old) != _catalog_fields(config):
            self.catalog = self._build_catalog(config)
        if old.fault_seed != config.fault_seed:
            self.dice.reseed(config.fault_seed)
        self._config = config

    def set_config(self, config: EmulatorConfig) -> EmulatorConfig:
        with self._lock:
            new_ids = {r.id for r in config.forced} - {r.id for r in self._config.forced}
            self._init_forced(tuple(r for r in config.forced if r.id in new_ids))
            raw = orjson.dumps(config.to_json())
            self.store.set(K.CONFIG, raw.decode())
            self._adopt(config)
            self._raw = raw
            return self._config

    def _init_forced(self, rules: tuple[ForcedRule, ...]) -> None:
        for rule in rules:
            self.store.set(K.forced_remaining(rule.id), str(rule.count))

    @staticmethod
    def _build_catalog(config: EmulatorConfig) -> Catalog:
        return Catalog(config.catalog_size, config.catalog_seed, config.audio_features_share,
                       config.search_index_max_tracks)

    # --- clock ---
    def now(self, config: EmulatorConfig | None = None) -> float:
        config = config or self.config
        if config.clock_frozen_at is not None:
            return config.clock_frozen_at
        return time.time() + config.clock_offset_s

    # --- forced answers ---
    def take_forced(self, config: EmulatorConfig, endpoint: str, client_id: str | None) -> ForcedRule | None:
        """The first forced rule that matches and still has calls left (one is used up)."""
        for rule in config.forced:
            if rule.id in self._exhausted or not rule.matches(endpoint, client_id):
                continue
            if self.store.incr(K.forced_remaining(rule.id), -1) >= 0:
                return rule
            self._exhausted.add(rule.id)
        return None

    # --- reset ---
    def reset(self, grants: bool = False, config: bool = False) -> None:
        self.stats.reset()
        self.limiter.reset()  # windows, penalty boxes, quotas, forced counters
        self._exhausted.clear()
        if grants:
            self.oauth.reset()
        if config:
            self.set_config(self.initial_config)
        elif self._config.forced:
            self.set_config(self._config.with_changes({"forced": []}))

    def close(self) -> None:
        self.store.close()


def _catalog_fields(config: EmulatorConfig) -> tuple[int, str, float, int]:
    """What the catalog is built from: a change of any of them builds a new one."""
    return config.catalog_size, config.catalog_seed, config.audio_features_share, config.search_index_max_tracks


def _keep_process_fields(config: EmulatorConfig, initial: EmulatorConfig) -> EmulatorConfig:
    """redis_url/prefix belong to the process, never to the shared config."""
    import dataclasses

    return dataclasses.replace(config, redis_url=initial.redis_url, redis_prefix=initial.redis_prefix)
