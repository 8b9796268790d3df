"""bench/wrk.py, the benchmarks' load generator, against the emulator over a socket: what it
reports is what the server saw, and an answer that is not a 2xx is an error, not a figure.
(wrk comes from Debian: .ci/run installs it.)"""

from __future__ import annotations

import pytest

from bench import wrk


def test_wrk_cycles_through_the_paths_and_reports_what_the_server_answered(emu):
    emu.configure(rate_limit=None)
    token = emu.app_token("wrk-app")
    ids = emu.ids(30)
    paths = [f"/v1/tracks?ids={','.join(ids[k:k + 10])}" for k in (0, 10, 20)]

    load = wrk.run(emu.base_url, paths, duration_s=1, connections=4, token=token)

    answered = emu.stats()["requests"]["/v1/tracks"]
    assert set(answered) == {"200"}
    # wrk counts the answers it read within the duration; the server may have answered a few more
    assert 3 <= load.requests <= answered["200"] <= load.requests + 4
    assert emu.stats()["batch_ids"]["/v1/tracks"]["histogram"] == {"10": answered["200"]}
    assert 0 < load.p50_ms <= load.p95_ms <= load.p99_ms <= load.max_ms
    assert load.per_s > 0


def test_an_answer_that_is_not_2xx_is_an_error(emu):
    emu.configure(rate_limit=None)
    with pytest.raises(wrk.WrkError, match="answers were not 2xx"):
        wrk.run(emu.base_url, ["/v1/tracks?ids=x"], duration_s=1, connections=2, token="not-a-token")
