"""The chaos run's own arithmetic (pure): the stall and the job runs read from the workers' logs."""

import json

from tests.chaos.fleet import read_runs
from tests.chaos.scenario import Outages, saturation, stalls


def test_a_stall_is_a_span_with_work_due_and_no_job_finished():
    samples = [(0.0, 0, 5), (1.0, 1, 5), (2.0, 1, 5), (6.0, 1, 4), (7.0, 3, 2)]
    assert stalls(samples) == [(0.0, 1.0), (1.0, 7.0)]


def test_no_stall_while_nothing_is_due():
    # Everything parked (due 0) from 1.0 to 9.0: waiting on a Retry-After is not a stall.
    samples = [(0.0, 0, 5), (1.0, 1, 0), (9.0, 1, 0), (9.5, 1, 3), (10.0, 2, 2)]
    assert stalls(samples) == [(0.0, 1.0), (9.5, 10.0)]


def test_outages_overlap():
    outages = Outages([[10.0, 12.0]])
    assert outages.overlaps(11.0, 20.0) and outages.overlaps(0.0, 10.5) and not outages.overlaps(12.5, 30.0)


def test_runs_and_parks_from_json_logs(tmp_path):
    def line(at: str, message: str, job: str | None = "j1") -> str:
        return json.dumps({"time": f"2026-12-01T10:00:{at}+00:00", "level": "INFO", "message": message,
                           **({"job_id": job} if job else {})})

    log = tmp_path / "w.log"
    log.write_text("\n".join([
        line("00", "job started"), line("02", "job parked in 5s: RateLimited: x"),
        line("08", "job started"), line("11", "job completed"),
        line("12", "worker process ready", None), '{"cut by a SIGKILL', line("13", "job started", "j2"),
    ]))
    runs = read_runs([log])
    assert sorted(runs.durations_s) == [2.0, 3.0] and runs.completions == {"j1": 1} and runs.parks == {"j1": 1}


def test_saturation_leaves_out_the_last_window():
    full = [[t, 10, 0] for t in range(90)]  # 10 a second against 300 per 30 s
    assert saturation(full, 300) == 1.0
    half = [[t, 5, 0] for t in range(60)] + [[t, 0, 0] for t in range(60, 90)]
    assert saturation(half, 300) == 0.5
    assert saturation(full[:40], 300) == 0.0  # not two windows long: no figure
