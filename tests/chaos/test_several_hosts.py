"""Several hosts (`make chaos`, as root): worker groups in network namespaces of their own, reaching
PostgreSQL, Redis and the emulator over veth pairs on a private bridge (tests/chaos/netns.py).

- With latency and loss on every link (netem 20ms±5ms, 0.5% loss), the fleet's one limit holds
  (the emulator's busiest window never above it, no window 429) and the fleet keeps its budget
  >= 90% full.
- One host cut off from everything for 30 s: its jobs are taken over, nothing is lost or written
  twice, and it rejoins on its own (no restart) and completes jobs again.
"""

import time

import pytest

from tests.chaos.netns import Hosts
from tests.chaos.relay import Impairment
from tests.chaos.scenario import WINDOW_S, Driver, Plan, Run

LIMIT = 300  # per 30 s window: 10 requests a second for the whole fleet
# The fleet's budget is paced in windows of 5 s: as "300/30s" it would spend the whole window in its
# first seconds and then wait ~25 s with work due (measured: a 25 s stall), which the stall figure
# would blame on the hosts. Not "10/1s" either: the limiter holds each admission its margin longer
# than the window, at least 250 ms (pipeline/ratecontrol/limiter.py, `default_margin_ms`), so 10 per
# 1.25 s is 8 a second, 0.80 of the limit at most (what this run measured before). 50 per 5.25 s is
# 9.52 a second (0.95), and any 30 s of arrivals holds at most six of its windows: 300, never more.
FLEET_RATE = "50/5s"
# Little's law: 9.5 requests a second at ~1.7 requests a job is 5.6 jobs a second; a job's run over
# a 40 ms round trip (a few dozen of them: pings, transactions, the limiter, the calls) takes over a
# second, so the fleet needs well over 6 threads busy, with room for the machine's noise.
QUIET = dict(kill_every_s=None, pg_restart_at_s=None, redis_flush_at_s=None, redis_outage_at_s=None,
             forced_429_at_s=None, window_burst_at_s=None, popularity_at_share=None, second_client=False,
             fleet_rate=FLEET_RATE, emulator_limit=LIMIT, processes=1, threads=8)
LOSSY = Plan(tracks=30_000, users={"u1": "bob"}, faults="", drain_timeout_s=300.0, **QUIET)  # type: ignore[arg-type]
CUT = Plan(tracks=20_000, users={"u1": "bob"}, drain_timeout_s=200.0, **QUIET)  # type: ignore[arg-type]
CUT_AT_S, CUT_FOR_S = 10.0, 30.0


def _hosts_run(plan: Plan, hosts: Hosts) -> Run:
    return Run(plan, bind_host=hosts.address, hosts=[(f"h{i}", hosts.prefix(i)) for i in range(hosts.count)],
               relayed=True)


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_with_latency_and_loss_the_fleet_keeps_one_limit_and_fills_it():
    hosts = Hosts(3, Impairment())  # 20 +- 5 ms each way, 0.5% of chunks stalled for an RTO
    with hosts, _hosts_run(LOSSY, hosts) as run:
        hosts.relay(run.service_ports())
        report = run.execute()
    print(f"saturation: {report.saturation:.3f} of {LIMIT}/{WINDOW_S:.0f}s; relays: {hosts.relay_counts}")
    assert not hosts.leftovers()
    assert report.rate_limited.get("window", 0) == 0, report.lines()
    assert report.busiest_window <= LIMIT, report.lines()
    assert report.saturation >= 0.9, report.lines()


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_a_host_cut_off_for_30s_has_its_jobs_taken_over_and_rejoins_on_its_own():
    hosts = Hosts(3, Impairment())
    driver = Driver()
    restored: list[float] = []

    def cut() -> None:
        span = run.outages.begin()
        hosts.cut(0)
        driver.note(f"host h0 cut off for {CUT_FOR_S:.0f}s")

        def restore() -> None:
            hosts.restore(0)
            restored.append(time.time())
            span[1] = restored[0]
            driver.note("host h0 back")
        driver.at(driver.elapsed() + CUT_FOR_S, "restore", restore)

    driver.at(CUT_AT_S, "cut", cut)
    with hosts, _hosts_run(CUT, hosts) as run:
        hosts.relay(run.service_ports())
        run.started_wall = time.time()
        report = run.drive(driver)
        problems = run.verify()
        print("\n" + report.lines())
        assert not problems, "\n".join(problems) + "\n" + report.lines()
        h0 = run.groups["h0"]
        assert h0.alive() and h0 not in run.retired, "h0 did not rejoin on its own:\n" + h0.output()[-3000:]
        assert restored, "the run ended before h0's link came back: give it more work"
        last = run.runs.last_completed_at.get(h0.log_path.name, 0.0)
        assert last > restored[0], f"h0 completed no job after it came back\n{h0.output()[-3000:]}"
        assert not [e for e in report.events if "exited on its own" in e], report.events
    assert not hosts.leftovers()
