"""deploy/Dockerfile and the build context (.dockerignore)."""

from __future__ import annotations

from tests.unit.deploy.checker import PROGRAM
from tests.unit.deploy.deployfiles import (
    DEPLOY,
    PROJECT,
    SECRET_NAMES,
    dockerfile_instructions,
    env_assignments,
    exec_form,
)


def test_the_image_is_small_non_root_and_carries_no_secret():
    instructions = dockerfile_instructions((DEPLOY / "Dockerfile").read_text())
    froms = [v for k, v in instructions if k == "FROM"]
    assert len(froms) >= 2 and all(v.startswith("python:3.11-slim") for v in froms), froms  # multi-stage
    final = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM"):]
    users = [v for k, v in final if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root"), users
    assert exec_form(next(v for k, v in final if k == "ENTRYPOINT")) == [PROGRAM]
    assert exec_form(next(v for k, v in final if k == "CMD")) == ["worker"]
    for keyword, value in instructions:
        if keyword in ("ENV", "ARG"):
            names = env_assignments(value) if keyword == "ENV" else [value.split("=", 1)[0]]
            assert not [n for n in names if SECRET_NAMES.search(n)], f"{keyword} {value}: a secret baked in"
        if keyword in ("COPY", "ADD"):
            assert ".env" not in value and "secret" not in value.lower(), value
    assert "EXPOSE" in {k for k, _ in final}


def test_the_build_context_leaves_out_local_state_and_credentials():
    ignored = {line.strip() for line in (PROJECT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".spotify-sync", ".env"} <= ignored
    assert "tests/" in ignored or "tests" in ignored

