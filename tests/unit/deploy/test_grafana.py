"""deploy/grafana/spotify-sync.json: every query names only metrics, labels and values of the contract,
every panel reads the datasource variable, and the panels an operator looks for are there."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from tests.unit.deploy.deployfiles import DEPLOY
from tests.unit.deploy.metrics_contract import expression_problems, metric_names

DASHBOARD = DEPLOY / "grafana" / "spotify-sync.json"
DATASOURCE_VARIABLE = "${datasource}"


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: list[dict]) -> Iterator[dict]:
    """Every panel, those inside (collapsed) rows included."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


def queried_panels() -> list[dict]:
    return [panel for panel in all_panels(dashboard()["panels"]) if panel["type"] != "row"]


def expressions() -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in queried_panels() for target in panel["targets"]]


def test_the_dashboard_has_a_prometheus_datasource_variable():
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_and_query_reads_the_datasource_variable():
    panels = queried_panels()
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == DATASOURCE_VARIABLE, panel["title"]
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_VARIABLE, panel["title"]
    rows = [panel for panel in all_panels(dashboard()["panels"]) if panel["type"] == "row"]
    assert not [row["title"] for row in rows if row.get("targets")], "a row with queries"


def test_every_query_names_only_metrics_of_the_contract():
    assert {f"{title}: {expr}": problems for title, expr in expressions()
            if (problems := expression_problems(expr))} == {}


def test_the_panels_an_operator_looks_for_are_there():
    used = set().union(*(metric_names(expr) for _, expr in expressions()))
    assert used >= {
        "spotify_requests_total", "spotify_rate_limited_total", "spotify_penalty_box_seconds",
        "spotify_sync_jobs_total", "spotify_sync_queue_depth", "spotify_sync_rows_upserted_total",
        "spotify_rate_budget", "spotify_api_request_seconds_bucket", "spotify_search_enrichment_total",
        "spotify_search_cache_total",
    }
    latency = [expr for _, expr in expressions() if "spotify_api_request_seconds_bucket" in expr]
    quantiles = {float(q) for expr in latency for q in re.findall(r"histogram_quantile\(\s*([\d.]+)", expr)}
    assert quantiles >= {0.5, 0.95, 0.99}
    assert any('result="hit"' in expr and "/" in expr for _, expr in expressions()), "no cache hit ratio"


def test_panels_have_unique_ids_and_a_place_on_the_grid():
    panels = list(all_panels(dashboard()["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
    assert dashboard()["uid"] == "spotify-sync"
