"""Issues 16 and 13.5, the fleet's pace: a budget learned against limits the fleet is not told, the
same fleet with static limits as baselines, a limit halved mid-run, and the interactive lane.

Every case is its own world (database, namespace, emulator) and its own load processes
(bench/pace_load.py: the real client calling get_tracks, waiting out every RateLimited as a parked
job would): 3 processes x 8 threads for every learned case, as the issue asks; one process of 24
threads for a static baseline, whose budget needs no fleet to be shared (the limiter is the same
Redis log either way) and whose extra processes would only take CPU from the cases being judged.

All cases run at once on one clock, every load process held at `ready` until the run starts, so
the load's seconds are the bench's (a load started before the sampler, slow to import on a busy
machine, would run past its end). Cases start a window / (number of cases) apart: started
together, every fleet would send its window's burst at the same instant, and on 2 cores each
burst would slow the others'. The static baselines run the first half only (their figure
settles in a window) and the lane the second half, so at most about 8 cases load the machine at
any time. The bench samples each emulator's counts and the learned budget once a second, each
case on its own clock. Figures:
- converge: the first second from which the learned budget stays within 85 %..110 % of the real
  limit to the end (goal <= 5 minutes);
- achieved / real limit after it: requests Spotify answered (not 429) in the rolling window before
  each second, averaged, over the real limit (goal >= 0.9); static cases after their first window;
- 429s per 10 minutes after it (goal <= 1): the most in any 10 minutes from the end of the
  converging event (its last in-flight 429s land a second after it: they are the cost of
  converging, shown) to the end, so a span shorter than 10 minutes is judged by its count; the
  429s that came while the budget was at or under the limit are named: those are the host's
  delays between admitting a request and its arrival (a load artefact), not the rule's probing;
- halved: the real limit halved once the budget converged: the 429s until the budget is within
  85 %..110 % of the new limit and stays there, and the seconds that took;
- the lane: while a backfill's load holds the background lane at its limit, the seconds a search's
  call waits for its permit, interactive (`client.interactive()`) against the background lane.

Full: limits 60, 180, 600 per 30 s; penalty_s 2 and 0; static 100/60s (the default) and 20 % above
the real limit; 10 minutes (5 to converge, 5 measured), about 11 minutes with the set-up; 40
searches. Quick: one limit, 30 per 3 s windows on both sides (auto:window=3s), 36 s; 6 searches.
Quick figures are not comparable (a 3 s window leaves the limiter's 250 ms margin at 8 %).
"""

from __future__ import annotations

import json
import math
import os
import selectors
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import redis

from bench.harness import ROOT, BenchError, World, world, write_ids
from bench.report import Figure
from emulator.config import EmulatorConfig
from pipeline.errors import RateLimited
from pipeline.ratecontrol.budget import decode
from pipeline.ratecontrol.limiter import BACKGROUND, INTERACTIVE
from pipeline.wiring import build_client
from shared.keys import RedisKeys
from shared.logging import setup_logging
from shared.settings import Rate

PROCESSES, THREADS = 3, 8  # a learned case's fleet, as the issue asks
BASELINE_THREADS = 24  # a static baseline: one process
BAND = (0.85, 1.10)  # of the real limit: "converged"
TEN_MINUTES_S = 600.0
# Every load process of every case imported and built its client: 27 processes importing at once
# on 2 busy cores (load average 50) were not all ready after 5 minutes.
READY_TIMEOUT_S = 900.0
# To look into a figure: PACE_CASES="auto, penalty 2s, limit 600;auto, limit halved" runs only the cases
# of those names (`;` apart, as the figures name them), without the lane.
PACE_CASES = "PACE_CASES"

Sample = tuple[float, int, int, float]  # (t since the case started, answered, 429s, budget per window)


@dataclass
class Case:
    name: str
    limit: int  # the emulator's, per window; the fleet is not told it
    rate: Rate  # SPOTIFY_RATE_LIMIT
    penalty_s: float = 0.0
    halve_at_s: float | None = None
    processes: int = PROCESSES
    threads: int = THREADS
    start_s: float = 0.0  # on the run's clock
    seconds: float = 0.0  # of load
    world: World | None = None
    loads: list[subprocess.Popen] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    started_at: float | None = None  # monotonic
    halved_at: float | None = None  # on the case's clock


def _counts(stats: dict) -> tuple[int, int]:
    api = sum(sum(s.values()) for e, s in stats["requests"].items() if e.startswith("/v1/"))
    limited = sum(s.get("429", 0) for e, s in stats["requests"].items() if e.startswith("/v1/"))
    return api - limited, limited


def _budget(case: Case, client: redis.Redis, window_s: int) -> float:
    """The fleet's budget now, per `window_s` (a static 100/60s is 50 per 30 s)."""
    w = case.world
    assert w is not None
    if not case.rate.learned:
        return case.rate.requests * window_s / case.rate.per_s
    keys = RedisKeys(w.settings.redis_namespace)
    state = decode(client.hgetall(keys.learned_budget(w.settings.require_client_credentials()[0])))
    return float(state.requests) if state else float(case.rate.requests)


def _start_load(case: Case, ids_file: Path) -> None:
    """The case's load processes, started but held at `ready` until `_go` (see bench/pace_load.py).
    Their stderr goes to a file: a pipe nobody reads until the end would fill and stop them."""
    w = case.world
    assert w is not None
    for n in range(case.processes):
        with open(w.workdir / f"load-{n}.err", "w") as err:
            case.loads.append(subprocess.Popen(
                [sys.executable, "-m", "bench.pace_load", str(case.threads), str(case.seconds), str(ids_file)],
                env=w.env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True))


def _load_error(case: Case, n: int) -> str:
    assert case.world is not None
    return (case.world.workdir / f"load-{n}.err").read_text(errors="replace")[-600:]


def _wait_ready(cases: list[Case], timeout_s: float) -> None:
    """Every load process of `cases` has built its client and waits for `go`."""
    deadline = time.monotonic() + timeout_s
    waiting = {(i, n): (case, n, p) for i, case in enumerate(cases) for n, p in enumerate(case.loads)}
    with selectors.DefaultSelector() as selector:
        for key, (_, _, process) in waiting.items():
            selector.register(process.stdout, selectors.EVENT_READ, key)  # type: ignore[arg-type]
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{len(waiting)} of {sum(len(c.loads) for c in cases)} load processes not ready "
                                 f"after {timeout_s:.0f} s")
            for ready, _ in selector.select(left):
                case, n, process = waiting.pop(ready.data)
                selector.unregister(ready.fileobj)
                if process.stdout.readline().strip() != "ready":  # type: ignore[union-attr]
                    process.wait(30)
                    raise BenchError(f"{case.name}: a load process exited with {process.returncode} before its "
                                     f"start: {_load_error(case, n)}")


def _go(case: Case) -> None:
    for process in case.loads:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    case.started_at = time.monotonic()


def _finish_load(case: Case) -> None:
    """The load processes ended. The figures are the emulator's counts, not theirs: one that has not
    ended a minute after its time (a call of its in a budget wait, on a host at load average 60) is
    stopped; one that failed is an error."""
    for n, process in enumerate(case.loads):
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=30)
            print(f"[bench] pace: {case.name}: a load process stopped a minute after its end", file=sys.stderr)
            continue
        if process.returncode != 0:
            raise BenchError(f"{case.name}: a load process exited with {process.returncode}: {_load_error(case, n)}")


def _stop_loads(cases: list[Case]) -> None:
    """A run that failed: end its load processes (a held one exits when its stdin closes)."""
    for case in cases:
        for process in case.loads:
            if process.poll() is None:
                process.kill()
                process.wait(30)


def converged_at(samples: list[Sample], limit: float, since: float = 0.0) -> float | None:
    """The first sample time >= since from which the budget stays in BAND of `limit` to the end."""
    found = None
    for t, _, _, budget in samples:
        if t < since:
            continue
        inside = BAND[0] * limit <= budget <= BAND[1] * limit
        found = (found if found is not None else t) if inside else None
    return found


def rolling_share(samples: list[Sample], limit: int, window_s: int, since: float) -> float:
    """The mean, over every sample from `since` + a window on, of the requests answered in the window
    before it, over `limit`. A fleet at its budget sends in bursts a window apart: a plain count
    between two instants would depend on how many bursts fell between them."""
    shares = []
    for i, (t, answered, _, _) in enumerate(samples):
        if t < since + window_s:
            continue
        before = next((a for u, a, _, _ in reversed(samples[:i]) if u <= t - window_s), None)
        if before is not None:
            shares.append((answered - before) / limit)
    return sum(shares) / len(shares) if shares else 0.0


def quiet_after(samples: list[Sample], t: float) -> int:
    """The index of the first sample at or after `t` that met no new 429: the event that ended at
    `t` has had its last in-flight answers."""
    for i in range(1, len(samples)):
        if samples[i][0] >= t and samples[i][2] == samples[i - 1][2]:
            return i
    return len(samples) - 1


def most_in_any(samples: list[Sample], first: int, span_s: float) -> int:
    """The most 429s in any `span_s` from sample `first` on (all of them in a shorter run)."""
    best = 0
    for j in range(first, len(samples)):
        t, limited = samples[j][0], samples[j][2]
        base = next((s[2] for s in reversed(samples[first:j + 1]) if s[0] <= t - span_s), samples[first][2])
        best = max(best, limited - base)
    return best


def under_limit_429s(samples: list[Sample], first: int, limit: float) -> int:
    """The 429s from sample `first` on that met a budget at or under the limit: not the rule probing
    past it but requests that reached the emulator later than the limiter's margin allows."""
    return sum(samples[i][2] - samples[i - 1][2] for i in range(first + 1, len(samples))
               if samples[i - 1][3] <= limit)


def _at(samples: list[Sample], t: float) -> Sample:
    return next((s for s in samples if s[0] >= t), samples[-1])


def _sample(case: Case, client: redis.Redis, window_s: int) -> None:
    assert case.world is not None and case.started_at is not None
    if case.halve_at_s is not None and case.halved_at is None \
            and time.monotonic() - case.started_at >= case.halve_at_s:
        case.world.emulator.configure(rate_limit=case.limit // 2)
        case.halved_at = time.monotonic() - case.started_at
    answered, limited = _counts(case.world.emulator.stats())
    case.samples.append((time.monotonic() - case.started_at, answered, limited, _budget(case, client, window_s)))


def _drive(cases: list[Case], client: redis.Redis, window_s: int) -> None:
    """Start each case at its time and sample every running one once a second, until all ended."""
    begun = time.monotonic()
    while True:
        tick = time.monotonic()
        running = False
        for case in cases:
            if case.started_at is None:
                running = True
                if tick - begun >= case.start_s:
                    _go(case)
                continue
            if time.monotonic() - case.started_at <= case.seconds + 1.0:  # one sample past its end
                running = True
                _sample(case, client, window_s)
        if not running:
            return
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))


def _figures(case: Case, window_s: int, converge_cap_s: float) -> list[Figure]:
    s = case.samples
    learned = case.rate.learned
    start = converged_at(s, case.limit) if learned else float(max(window_s, case.rate.per_s))
    shape = f"{case.name}; real limit {case.limit}/{window_s}s, {case.processes}x{case.threads}"
    if start is None or start >= s[-1][0] - window_s:
        return [Figure(f"{case.name}: converge", round(s[-1][0], 1), "s",
                       against=shape + "; never settled in the run (its length shown)",
                       target=f"<= {converge_cap_s:.0f} s", met=False)]
    first = quiet_after(s, start) if learned else s.index(_at(s, start))
    t0, _, limited0, _ = s[first]
    t1, _, limited1, budget1 = s[-1]
    span = t1 - t0
    achieved = rolling_share(s, case.limit, window_s, t0)
    figures = [Figure(f"{case.name}: achieved / real", round(achieved, 3), "of limit",
                      against=f"{shape}; {span:.0f} s measured from {t0:.0f} s; budget at the end {budget1:.0f}",
                      target=">= 0.9" if learned else "", met=achieved >= 0.9 if learned else None)]
    if learned:
        most = most_in_any(s, first, TEN_MINUTES_S)
        skewed = under_limit_429s(s, first, case.limit)
        figures += [
            Figure(f"{case.name}: converge", round(start, 1), "s", against=f"{shape}; {limited0} 429s to converge",
                   target=f"<= {converge_cap_s:.0f} s", met=start <= converge_cap_s),
            Figure(f"{case.name}: 429s per 10 min", most, "429s",
                   against=f"the most in any 10 min of the {span:.0f} s after converging: {limited1 - limited0} in all, "
                           f"{skewed} of them at a budget under the limit (the host's delays, not the probe)",
                   target="<= 1", met=most <= 1)]
    else:
        figures.append(Figure(f"{case.name}: 429s per 10 min", round((limited1 - limited0) * 600 / span, 1), "429s",
                              against=f"{limited1 - limited0} in {span:.0f} s, scaled; {limited0} before"))
    return figures


def _halved_figures(case: Case, window_s: int) -> list[Figure]:
    assert case.halved_at is not None
    s, new_limit = case.samples, case.limit // 2
    adapted = converged_at(s, new_limit, since=case.halved_at)
    _, _, limited_before, _ = _at(s, case.halved_at)
    end = _at(s, adapted) if adapted is not None else s[-1]
    shape = f"real limit {case.limit} -> {new_limit} per {window_s}s at {case.halved_at:.0f} s"
    seconds = (adapted if adapted is not None else s[-1][0]) - case.halved_at
    return [Figure("limit halved: seconds to adapt", round(seconds, 1), "s",
                   against=shape + ("" if adapted is not None else "; not adapted by the end (time left shown)"),
                   met=None if adapted is not None else False),
            Figure("limit halved: 429s until adapted", end[2] - limited_before, "429s", against=shape)]


def _lane_figures(quick: bool, ids_file: Path) -> list[Figure]:
    """Searches while a backfill's load holds the background lane at the budget's limit."""
    # A search takes one interactive permit, the one timed (no request follows it: a second permit for
    # the request would double the searches' demand). 5 % of the limit is kept for them: one search
    # each 2 s and more stays within it (quick: 3 of 60 per 3 s, full: 15 of 300 per 30 s).
    window_s, limit, searches = (3, 60, 6) if quick else (30, 300, 40)
    pause_s = 0.5 if quick else 2.0
    config = EmulatorConfig(rate_limit=limit, rate_window_s=float(window_s), catalog_size=100_000)
    waits: dict[str, list[float]] = {INTERACTIVE: [], BACKGROUND: []}
    with world(config, spotify_rate_limit=Rate(limit, window_s)) as w:
        case = Case("lane", limit, w.settings.spotify_rate_limit, world=w,
                    seconds=window_s + 1 + searches * (pause_s + window_s) + 10)  # ended once the searches are
        _start_load(case, ids_file)
        try:
            _wait_ready([case], READY_TIMEOUT_S)
            _go(case)
            # loguru's default would print every request of this client at DEBUG
            setup_logging(w.settings.replace(log_level="WARNING"))
            limiter = build_client(w.settings)._limiter
            time.sleep(window_s + 1)  # the load has filled the background lane
            for _ in range(searches):
                for lane, max_wait_s in ((INTERACTIVE, 2.0), (BACKGROUND, 10.0)):  # 10 s: the baseline's cap
                    started = time.monotonic()
                    try:
                        limiter.acquire(max_wait_s, lane=lane)
                        waits[lane].append(time.monotonic() - started)
                    except RateLimited:  # a refused permit counts as its whole wait
                        waits[lane].append(max_wait_s)
                time.sleep(pause_s)
        finally:
            _stop_loads([case])

    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, math.ceil(0.95 * len(values)) - 1)]

    fast, slow = p95(waits[INTERACTIVE]), p95(waits[BACKGROUND])
    return [Figure("search permit wait p95 (interactive lane)", round(fast, 3), "s",
                   against=f"background lane p95 {slow:.2f} s (10 s: refused); {searches} searches {pause_s:g} s apart while "
                           f"{PROCESSES}x{THREADS} load the budget ({limit}/{window_s}s)", target="<= 0.1", met=fast <= 0.1)]


def _cases(quick: bool, window_s: int, seconds: float, converge_cap_s: float) -> list[Case]:
    """The learned cases for the whole run, the static baselines for its first half; each a window
    / (number of cases) after the one before."""
    limits = [30] if quick else [60, 180, 600]
    auto = Rate(5 if quick else 50, window_s, learn_up_to=3000)
    penalty_s = 0.5 if quick else 2.0
    baseline = {"processes": 1, "threads": BASELINE_THREADS, "seconds": seconds / 2}
    cases: list[Case] = []
    for limit in limits:
        cases += [Case(f"auto, penalty {penalty_s:g}s, limit {limit}", limit, auto, penalty_s=penalty_s,
                       seconds=seconds),
                  Case(f"auto, no penalty, limit {limit}", limit, auto, seconds=seconds)]
        if not quick:
            cases.append(Case(f"static 100/60s, limit {limit}", limit, Rate(100, 60), **baseline))  # type: ignore[arg-type]
        cases.append(Case(f"static +20%, limit {limit}", limit, Rate(math.ceil(1.2 * limit), window_s),
                          **baseline))  # type: ignore[arg-type]
    cases.append(Case("auto, limit halved", limits[-1] if quick else 180, auto, halve_at_s=converge_cap_s,
                      seconds=seconds))
    chosen = [name.strip() for name in os.environ.get(PACE_CASES, "").split(";") if name.strip()]
    if chosen:
        cases = [case for case in cases if case.name in chosen]
        if not cases:
            raise BenchError(f"{PACE_CASES} names no case: {chosen}")
    for n, case in enumerate(cases):
        case.start_s = round(n * window_s / len(cases), 2)
    return cases


def run(quick: bool) -> list[Figure]:
    window_s = 3 if quick else 30
    seconds = 36.0 if quick else 600.0
    converge_cap_s = 20.0 if quick else 300.0
    cases = _cases(quick, window_s, seconds, converge_cap_s)
    lane: dict[str, list[Figure] | BaseException] = {}

    def lane_run(ids_file: Path) -> None:
        try:
            lane["figures"] = _lane_figures(quick, ids_file)
        except BaseException as exc:  # noqa: BLE001 - raised again in the run's thread
            lane["error"] = exc

    with ExitStack() as stack:
        for case in cases:
            config = EmulatorConfig(rate_limit=case.limit, rate_window_s=float(window_s), penalty_s=case.penalty_s,
                                    catalog_size=100_000)
            case.world = stack.enter_context(world(config, spotify_rate_limit=case.rate))
        assert cases[0].world is not None
        ids_file = write_ids(cases[0].world, 50)  # the same catalog in every emulator
        stack.callback(_stop_loads, cases)
        for case in cases:
            _start_load(case, ids_file)
        waited = time.monotonic()
        _wait_ready(cases, READY_TIMEOUT_S)
        print(f"[bench] pace: {sum(len(c.loads) for c in cases)} load processes ready after "
              f"{time.monotonic() - waited:.0f} s", file=sys.stderr, flush=True)
        # The lane runs in the second half, when the baselines have ended.
        lane_thread = None if os.environ.get(PACE_CASES) else threading.Timer(seconds / 2, lane_run, args=(ids_file,))
        if lane_thread is not None:
            lane_thread.start()
        client = redis.Redis.from_url(cases[0].world.settings.require_redis_url())
        try:
            _drive(cases, client, window_s)
        finally:
            if os.environ.get("PACE_SAMPLES"):  # every case's seconds, to look into a figure
                Path(os.environ["PACE_SAMPLES"]).write_text(json.dumps(
                    {case.name: {"start_s": case.start_s, "halved_at": case.halved_at, "samples": case.samples}
                     for case in cases}))
            if lane_thread is not None:
                lane_thread.join()
        for case in cases:
            _finish_load(case)
    if "error" in lane:
        raise lane["error"]  # type: ignore[misc]
    figures: list[Figure] = []
    for case in cases:
        figures += _halved_figures(case, window_s) if case.halve_at_s is not None else _figures(
            case, window_s, converge_cap_s)
    return figures + lane.get("figures", [])  # type: ignore[operator]
