"""The metrics the alert rules and the dashboard may name: the contract the code exports.

Metric names, their labels, and for some labels the only values they take. A PromQL expression
is checked against it (`expression_problems`), so an alert or a panel on a renamed metric, a
misspelt label or an outcome that does not exist fails here instead of staying silent in
production. The extractor is a scanner, not a PromQL parser: it knows enough of the language
(strings, label matchers, ranges, grouping clauses, functions, keywords) for these files.
"""

from __future__ import annotations

import re

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"

# name -> (type, labels)
METRICS: dict[str, tuple[str, frozenset[str]]] = {
    "spotify_requests_total": (COUNTER, frozenset({"endpoint", "status"})),
    "spotify_rate_limited_total": (COUNTER, frozenset({"reason"})),
    "spotify_penalty_box_seconds": (GAUGE, frozenset({"client_id"})),
    "spotify_token_refreshes_total": (COUNTER, frozenset({"kind", "result"})),
    "spotify_sync_rows_upserted_total": (COUNTER, frozenset({"table"})),
    "spotify_sync_jobs_total": (COUNTER, frozenset({"job_type", "outcome"})),
    "spotify_sync_queue_depth": (GAUGE, frozenset({"queue", "state"})),
    "spotify_sync_connections": (GAUGE, frozenset({"status"})),
    "spotify_sync_reconciled_total": (COUNTER, frozenset({"kind"})),
    "spotify_rate_budget": (GAUGE, frozenset({"client_id"})),
    "spotify_quota_blocked_seconds": (GAUGE, frozenset({"client_id"})),
    "spotify_api_request_seconds": (HISTOGRAM, frozenset({"route", "method", "status"})),
    "spotify_search_enrichment_total": (COUNTER, frozenset({"outcome"})),
    "spotify_search_cache_total": (COUNTER, frozenset({"result"})),
    "spotify_search_queued": (GAUGE, frozenset()),
}

# (metric, label) -> the values it takes, where the contract names them.
LABEL_VALUES: dict[tuple[str, str], frozenset[str]] = {
    ("spotify_sync_jobs_total", "outcome"): frozenset({"completed", "failed", "parked", "retry"}),
    ("spotify_sync_queue_depth", "state"): frozenset({"ready", "delayed"}),
    ("spotify_sync_connections", "status"): frozenset({"active", "needs_reauth", "expiring_soon"}),
    ("spotify_sync_reconciled_total", "kind"): frozenset({"lease_expired", "resent"}),
    ("spotify_search_enrichment_total", "outcome"): frozenset({"fresh", "cached", "pending", "degraded", "skipped"}),
    ("spotify_search_cache_total", "result"): frozenset({"hit", "stale", "miss"}),
}

# Labels Prometheus adds to every scraped series.
TARGET_LABELS = frozenset({"instance", "job", "namespace", "pod", "container", "service", "node"})


def series_names() -> dict[str, tuple[str, frozenset[str]]]:
    """Every series name the contract exports -> (its metric, the labels it carries); a histogram
    exports _bucket (with `le`), _count and _sum."""
    out = {}
    for name, (kind, labels) in METRICS.items():
        if kind == HISTOGRAM:
            out[f"{name}_bucket"] = (name, labels | {"le"})
            out[f"{name}_count"] = (name, labels)
            out[f"{name}_sum"] = (name, labels)
        else:
            out[name] = (name, labels)
    return out


KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
    "inf", "nan", "atan2",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"' + r"|'(?:[^'\\]|\\.)*'")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_RANGE = re.compile(r"\[[^\]]*\]")
# A selector's body is matchers whose quoted values may hold braces themselves: route="/songs/{id}".
_SELECTOR = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{((?:[^{}"]|"(?:[^"\\]|\\.)*")*)\}')
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_IDENTIFIER = re.compile(r"(?<![\w.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()")
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects (functions, keywords, labels and variables left out)."""
    text = _RANGE.sub(" ", expression)
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    text = _GROUPING.sub(" ", _STRING.sub(" ", text))
    text = _GRAFANA_VARIABLE.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in KEYWORDS}


def selectors(expression: str) -> list[tuple[str | None, list[tuple[str, str, str]]]]:
    """Each `name{matchers}` of an expression: its name (None for a bare `{...}`) and its
    (label, operator, value) matchers."""
    return [(match.group(1), _MATCHER.findall(match.group(2)))
            for match in _SELECTOR.finditer(_RANGE.sub(" ", expression))]


def _regex_alternatives(value: str) -> set[str] | None:
    """`a|b|c` -> {a, b, c}; None when the regex is anything more (then its values are not checked)."""
    return set(value.split("|")) if re.fullmatch(r"[\w]+(\|[\w]+)*", value) else None


def expression_problems(expression: str) -> list[str]:
    """Why an expression does not keep to the contract: unknown metric names, labels a metric does
    not carry, values a label never takes. Empty when it keeps to it."""
    known = series_names()
    problems = [f"{name}: no such metric in the contract" for name in sorted(metric_names(expression))
                if name not in known]
    for name, matchers in selectors(expression):
        if name is None or name not in known:
            continue
        metric, labels = known[name]
        for label, op, value in matchers:
            if label not in labels | TARGET_LABELS:
                problems.append(f"{name}: has no label {label!r} (it has {', '.join(sorted(labels))})")
                continue
            allowed = LABEL_VALUES.get((metric, label))
            if allowed is None or "$" in value or op in ("!=", "!~"):
                continue
            wanted = {value} if op == "=" else _regex_alternatives(value)
            if wanted is not None and not wanted <= allowed:
                problems.append(f"{name}: {label} is never {', '.join(sorted(wanted - allowed))} "
                                f"(it is one of {', '.join(sorted(allowed))})")
    return problems
