from tests.unit.spotify.conftest import fakes  # noqa: F401 - the client wired to fakes
