"""Every key name the emulator's store uses, in one place.

The store adds its own prefix (`emulator:<random or configured>:`), so several emulators and
test runs share one Redis without meeting. The first part of each key is its family, which is
what POST /_emulator/reset clears.
"""

STATS = "stats:"
RATE = "rate:"
OAUTH = "oauth:"
CONFIG = "config"


# --- stats ---
def stats_requests() -> str:
    return "stats:requests"  # field "<endpoint>|<status>"


def stats_limited() -> str:
    return "stats:limited"  # field: kind of 429


def stats_faults() -> str:
    return "stats:faults"  # field: fault kind


def stats_tokens() -> str:
    return "stats:tokens"  # field "<grant>|<client>|<user>"


def stats_batch(endpoint: str) -> str:
    return f"stats:batch:{endpoint}"  # field: number of ids -> requests


def stats_window_log(client_id: str) -> str:
    return f"stats:log:{client_id}"


def stats_per_second() -> str:
    return "stats:per-second"  # field "<epoch second>" (calls) or "<epoch second>|429"


def stats_window_max() -> str:
    return "stats:window-max"  # field: client id -> max requests in any window


# --- rate limiting ---
def rate_window(subject: str) -> str:
    return f"rate:window:{subject}"


def rate_blocked(subject: str) -> str:
    return f"rate:blocked:{subject}"


def rate_quota_start(subject: str) -> str:
    return f"rate:quota-start:{subject}"


def rate_quota_count(subject: str) -> str:
    return f"rate:quota-count:{subject}"


def forced_remaining(rule_id: str) -> str:
    return f"rate:forced:{rule_id}"


# --- OAuth ---
def client_secret(client_id: str) -> str:
    return f"oauth:client:{client_id}"


def auth_code(code: str) -> str:
    return f"oauth:code:{code}"


def consent_request(request_id: str) -> str:
    return f"oauth:consent:{request_id}"


def access_token(token: str) -> str:
    return f"oauth:access:{token}"


def refresh_token(token: str) -> str:
    return f"oauth:refresh:{token}"


def grant(client_id: str, user: str) -> str:
    return f"oauth:grant:{client_id}:{user}"


def app_users(subject: str) -> str:
    return f"oauth:users:{subject}"
