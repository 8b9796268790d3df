"""The contract checker of the alerts and the dashboard can fail: it finds the metric names of an
expression and catches an unknown metric, a label a metric does not carry and a value a label never takes."""

from __future__ import annotations

from tests.unit.deploy.metrics_contract import expression_problems, metric_names, selectors


def test_metric_names_leave_out_functions_keywords_labels_durations_and_variables():
    expr = ('histogram_quantile(0.99, sum by (route, le) (rate(spotify_api_request_seconds_bucket'
            '{route="/songs/{id}", job=~"$job"}[$__rate_interval]))) > 0.3 and on () '
            '(sum(increase(spotify_sync_jobs_total{outcome="completed"}[30m] offset 5m)) or on () vector(0)) == 0')
    assert metric_names(expr) == {"spotify_api_request_seconds_bucket", "spotify_sync_jobs_total"}
    assert selectors(expr)[0] == ("spotify_api_request_seconds_bucket", [("route", "=", "/songs/{id}"),
                                                                         ("job", "=~", "$job")])


def test_a_query_keeping_to_the_contract_has_no_problem():
    assert expression_problems(
        'sum(rate(spotify_search_cache_total{result=~"hit|stale", instance!="x"}[5m])) '
        '/ sum(rate(spotify_search_cache_total[5m]))') == []


def test_an_unknown_metric_a_wrong_label_and_a_wrong_value_are_each_named():
    problems = expression_problems(
        'rate(spotify_sync_job_total[5m]) + rate(spotify_sync_jobs_total{outcom="failed"}[5m])'
        ' + spotify_sync_queue_depth{state=~"ready|waiting"} + spotify_api_request_seconds{route="/x"}')
    assert problems == [
        "spotify_api_request_seconds: no such metric in the contract",  # a histogram: _bucket, _count, _sum
        "spotify_sync_job_total: no such metric in the contract",
        "spotify_sync_jobs_total: has no label 'outcom' (it has job_type, outcome)",
        "spotify_sync_queue_depth: state is never waiting (it is one of delayed, ready)",
    ]
