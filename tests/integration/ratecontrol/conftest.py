from tests.integration.spotify.conftest import start_emulator  # noqa: F401 - the served emulator fixture
