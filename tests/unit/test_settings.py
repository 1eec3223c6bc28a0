"""Settings are validated at start-up with messages that say what to fix."""

import pytest
from pydantic import ValidationError

from base.settings import DEFAULT_JWT_SECRET, Settings

SECRET = "x" * 40


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("sqlite:///var/a.db", "sqlite+aiosqlite:///var/a.db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_database_url_is_normalised_to_async_drivers(given, normalised):
    assert Settings(database_url=given).database_url == normalised


def test_unknown_database_scheme_is_refused():
    with pytest.raises(ValidationError, match="DATABASE_URL has unknown scheme 'mysql'"):
        Settings(database_url="mysql://u@h/db")


def test_default_jwt_secret_is_refused_outside_development():
    assert Settings(app_env="development").jwt_secret == DEFAULT_JWT_SECRET
    for env in ("test", "production"):
        with pytest.raises(ValidationError, match="JWT_SECRET is the development default"):
            Settings(app_env=env)
    assert Settings(app_env="production", jwt_secret=SECRET).jwt_secret == SECRET


def test_short_jwt_secret_is_refused():
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings(jwt_secret="short")


def test_redis_url_scheme_is_checked():
    assert Settings(redis_url="").redis_url is None
    with pytest.raises(ValidationError, match="REDIS_URL must start with redis://"):
        Settings(redis_url="http://localhost:6379")


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://kd@db/kd")
    settings = Settings()
    assert (settings.app_env, settings.database_url) == (
        "production",
        "postgresql+asyncpg://kd@db/kd",
    )
    assert settings.should_mask_errors is True
    assert Settings().should_mask_errors is True
    monkeypatch.setenv("APP_ENV", "development")
    assert Settings().should_mask_errors is False


def test_graphql_limits_and_introspection_come_from_the_environment(monkeypatch):
    assert (
        Settings().graphql_max_fields,
        Settings().graphql_max_aliases,
        Settings().graphql_max_cost,
        Settings().introspection_enabled,
    ) == (2000, 100, 10_000, True)
    monkeypatch.setenv("GRAPHQL_MAX_FIELDS", "500")
    monkeypatch.setenv("GRAPHQL_MAX_ALIASES", "5")
    monkeypatch.setenv("GRAPHQL_MAX_COST", "2500")
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("JWT_SECRET", SECRET)
    settings = Settings()
    assert (
        settings.graphql_max_fields,
        settings.graphql_max_aliases,
        settings.graphql_max_cost,
        settings.introspection_enabled,
    ) == (500, 5, 2500, False)
    monkeypatch.setenv("GRAPHQL_INTROSPECTION", "true")
    assert Settings().introspection_enabled is True
    monkeypatch.setenv("GRAPHQL_MAX_COST", "99")
    with pytest.raises(ValidationError, match="graphql_max_cost"):
        Settings()
