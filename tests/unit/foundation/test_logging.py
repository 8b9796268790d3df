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
