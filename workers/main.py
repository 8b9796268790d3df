"""The module the `dramatiq` worker command imports in each worker process:

    dramatiq workers.main:broker --processes 2 --threads 8        (or: spotify-sync worker ...)

Being Dramatiq's entry point, it reads the settings when imported: that import happens in each
worker process, after the fork. Everything with a connection is built later, by WorkerSetup's
after_process_boot hook (workers/setup.py).
"""

from __future__ import annotations

import os

import dramatiq

from shared.settings import Settings
from workers.actors import declare_actors
from workers.broker import build_broker
from workers.metrics import metrics_middleware
from workers.setup import WorkerSetup

settings = Settings.from_env()
# `spotify-sync worker --metrics-port 0` asks for no metrics endpoint (two runs on one host).
metrics = metrics_middleware() if os.environ.get("dramatiq_prom_port", "9191") != "0" else []
broker = build_broker(settings, middleware=[WorkerSetup(settings), *metrics])
actors = declare_actors(broker)
# `dramatiq workers.main` (no `:broker`) asks for the global broker: make it this one.
dramatiq.set_broker(broker)
