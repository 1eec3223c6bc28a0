"""docker-compose.yml is valid and has the services the deployment needs.

`docker compose config` only reads the file: no Docker engine is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKER = shutil.which("docker")
JWT_SECRET = "compose-config-test-secret-0123456789abcdef"

pytestmark = pytest.mark.skipif(DOCKER is None, reason="the docker CLI is not installed")


def compose(*args: str, jwt_secret: str | None = JWT_SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("JWT_SECRET", "POSTGRES_PASSWORD")}
    if jwt_secret is not None:
        env["JWT_SECRET"] = jwt_secret
    return subprocess.run(
        [DOCKER, "compose", "-f", str(COMPOSE_FILE), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_compose_file_is_valid() -> None:
    result = compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_compose_services_health_checks_and_start_order() -> None:
    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    assert set(services) == {"postgres", "redis", "ollama", "migrate", "api", "worker"}
    for name in ("postgres", "redis", "api"):
        healthcheck = services[name].get("healthcheck")
        assert healthcheck and healthcheck.get("test") and not healthcheck.get("disable"), name

    api = services["api"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("migrate", "api", "worker"):
        environment = services[name]["environment"]
        assert environment["DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        assert environment["REDIS_URL"].startswith("redis://redis:"), name
        assert environment["OLLAMA_HOST"] == "http://ollama:11434", name
        assert environment["APP_ENV"] == "production", name
        assert environment["JWT_SECRET"] == JWT_SECRET, name


def test_compose_refuses_to_start_without_a_jwt_secret() -> None:
    result = compose("config", "--quiet", jwt_secret=None)
    assert result.returncode != 0
    assert "set JWT_SECRET" in result.stderr
