import pytest

from shared.settings import Settings, SettingsError, parse_switch, parse_wait_s


@pytest.mark.parametrize(("raw", "seconds"), [("200ms", 0.2), ("1.5s", 1.5), ("2", 2.0), ("1m", 60.0), ("0ms", 0.0)])
def test_wait_durations(raw, seconds):
    assert parse_wait_s(raw) == pytest.approx(seconds)


def test_search_settings_defaults_and_values():
    assert Settings.from_env({}).search_enrich_wait_s == pytest.approx(0.2)
    settings = Settings.from_env({"SEARCH_ENRICH_WAIT": "350ms", "SEARCH_ENRICH_MAX_IN_FLIGHT": "2",
                                  "API_TOKENS": "a-token-of-sixteen+, another-token-16chars"})
    assert settings.search_enrich_wait_s == pytest.approx(0.35)
    assert settings.search_enrich_max_in_flight == 2
    assert settings.api_tokens == ("a-token-of-sixteen+", "another-token-16chars")


def test_api_tokens_are_secret():
    settings = Settings.from_env({"API_TOKENS": "a-token-of-sixteen+"})
    assert "a-token-of-sixteen+" in settings.secrets()
    assert "a-token-of-sixteen+" not in repr(settings)


def test_a_malformed_value_names_the_variable_and_never_echoes_a_token():
    with pytest.raises(SettingsError, match="^SEARCH_ENRICH_WAIT: expected a duration like 200ms"):
        Settings.from_env({"SEARCH_ENRICH_WAIT": "soon"})
    with pytest.raises(SettingsError, match="^API_TOKENS: expected") as caught:
        Settings.from_env({"API_TOKENS": "short"})
    assert "short" not in str(caught.value)


@pytest.mark.parametrize(("raw", "value"), [("on", True), ("OFF", False), (" true ", True), ("0", False), ("yes", True)])
def test_switches(raw, value):
    assert parse_switch(raw) is value


def test_the_search_indexer_is_on_unless_switched_off_and_a_bad_switch_is_named():
    assert Settings.from_env({}).search_indexer is True
    assert Settings.from_env({"SEARCH_INDEXER": "off"}).search_indexer is False
    assert Settings.from_env(Settings(search_indexer=False).as_environ()).search_indexer is False  # to a child process
    with pytest.raises(SettingsError, match="^SEARCH_INDEXER: expected on or off"):
        Settings.from_env({"SEARCH_INDEXER": "sometimes"})
