"""The chaos tier (`make chaos`): long runs against private services; see scenario.py."""


def pytest_configure(config):
    # Registered here until pyproject.toml's markers list it (--strict-markers).
    config.addinivalue_line("markers", "chaos: the chaos tier's long runs (make chaos), not part of make test")
