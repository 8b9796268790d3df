"""The log filter masks secrets by value and by shape, in text and JSON lines alike."""

import json

import pytest
from loguru import logger

from shared import logging as project_logging
from shared.settings import Settings


@pytest.fixture
def captured(capsys):
    def run(fmt: str, emit) -> str:
        project_logging._configured_with = None
        project_logging.setup_logging(Settings(log_format=fmt, spotify_client_secret="client-secret-xyz"))
        emit()
        return capsys.readouterr().err

    yield run
    project_logging._configured_with = None


def test_secrets_are_masked_in_text_lines(captured):
    project_logging.register_secret("AQDregisteredrefreshtoken")
    out = captured("text", lambda: (
        logger.info("headers Authorization: Bearer BQC4YlongAccessToken123 sent"),
        logger.info("body grant_type=refresh_token&refresh_token=AQDsomething123&client_id=abc"),
        logger.info('json {"access_token": "BQCzz1234567", "expires_in": 3600}'),
        logger.info("secret is client-secret-xyz and token AQDregisteredrefreshtoken"),
    ))
    for leaked in ("BQC4YlongAccessToken123", "AQDsomething123", "BQCzz1234567", "client-secret-xyz",
                   "AQDregisteredrefreshtoken"):
        assert leaked not in out
    assert "Bearer ***" in out and "refresh_token=***" in out and "client_id=abc" in out
    assert '"expires_in": 3600' in out


def test_json_lines_carry_extras_and_mask_them(captured):
    out = captured("json", lambda: logger.bind(job_id="j1", token="Bearer abcdefghijkl").info("done"))
    line = json.loads(out.strip().splitlines()[-1])
    assert line["message"] == "done" and line["job_id"] == "j1" and line["level"] == "INFO"
    assert line["token"] == "Bearer ***"


def test_tracebacks_are_written_and_masked_in_both_formats(captured):
    def fail_with_a_token():
        try:
            raise RuntimeError("refused Bearer BQCsecretaccesstoken99")
        except RuntimeError as exc:
            logger.opt(exception=exc).error("job failed")

    text_out = captured("text", fail_with_a_token)
    assert "Traceback (most recent call last)" in text_out and "RuntimeError" in text_out
    assert "BQCsecretaccesstoken99" not in text_out
    json_out = captured("json", fail_with_a_token)
    line = json.loads(json_out.strip().splitlines()[-1])
    assert "RuntimeError" in line["traceback"] and "BQCsecretaccesstoken99" not in json_out


def test_the_registry_of_masked_values_keeps_the_newest(monkeypatch):
    monkeypatch.setattr(project_logging, "MAX_REGISTERED", 3)
    monkeypatch.setattr(project_logging, "_registered", {})
    for n in range(5):
        project_logging.register_secret(f"token-number-{n}")
    assert list(project_logging._registered) == ["token-number-2", "token-number-3", "token-number-4"]
    assert project_logging.mask("a token-number-4 b token-number-0") == "a *** b token-number-0"


FORGED = "not found\x1b[31m\n2026-12-01 10:00:00.000 | INFO    | workers.actors | job completed\r\x9b2J\x07"


def test_a_forged_line_in_a_message_or_an_extra_stays_on_its_own_line(captured):
    out = captured("text", lambda: logger.bind(error=None, body=FORGED).warning(f"Spotify said {FORGED}"))
    lines = out.splitlines()
    assert len(lines) == 1, lines
    assert "\x1b" not in out and "\r" not in out and "\x9b" not in out and "\x07" not in out
    assert "Spotify said not found\\x1b[31m\\n2026-12-01 10:00:00.000 | INFO" in lines[0]
    assert "body=not found\\x1b[31m\\n" in lines[0]


def test_printable_escapes_control_characters_and_keeps_the_rest():
    printable = project_logging.printable
    assert printable("a\tb é ✓ {x}") == "a\tb é ✓ {x}"
    assert printable("a\nb\rc\x00d\x1be\x7ff\x85g\u2028h") == "a\\nb\\rc\\x00d\\x1be\\x7ff\\x85g\\u2028h"


def test_json_lines_are_left_to_json_escaping(captured):
    out = captured("json", lambda: logger.info(FORGED))
    [line] = out.strip().splitlines()
    assert json.loads(line)["message"] == FORGED
