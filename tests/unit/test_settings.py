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


def test_access_recheck_interval_is_bounded(monkeypatch):
    assert Settings().access_recheck_seconds == 5.0
    assert Settings(access_recheck_seconds=0).access_recheck_seconds == 0.0
    monkeypatch.setenv("ACCESS_RECHECK_SECONDS", "0.5")
    assert Settings().access_recheck_seconds == 0.5
    for bad in (-1, 301):
        with pytest.raises(ValidationError, match="access_recheck_seconds"):
            Settings(access_recheck_seconds=bad)
