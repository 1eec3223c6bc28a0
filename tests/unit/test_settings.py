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


def test_transport_limits_have_safe_defaults_and_bounds():
    settings = Settings()
    assert (
        settings.graphql_ws_max_message_bytes,
        settings.graphql_ws_init_timeout_seconds,
        settings.graphql_ws_max_subscriptions,
        settings.cors_allowed_origins,
    ) == (65_536, 3.0, 100, ())
    for field, value in (
        ("graphql_ws_max_message_bytes", 1023),
        ("graphql_ws_init_timeout_seconds", 0),
        ("graphql_ws_init_timeout_seconds", 61),
        ("graphql_ws_max_subscriptions", 0),
    ):
        with pytest.raises(ValidationError, match=field):
            Settings(**{field: value})


def test_cors_allowed_origins_are_read_comma_separated_and_normalised(monkeypatch):
    monkeypatch.setenv(
        "CORS_ALLOWED_ORIGINS",
        " https://App.Example.com:443 , http://localhost:5173,,http://[::1]:80",
    )
    assert Settings().cors_allowed_origins == (
        "https://app.example.com",
        "http://localhost:5173",
        "http://[::1]",
    )
    monkeypatch.setenv("CORS_ALLOWED_ORIGINS", "")
    assert Settings().cors_allowed_origins == ()


@pytest.mark.parametrize(
    "origin",
    [
        "*",
        "https://*.example.com",
        "https://app.example.com/",
        "https://app.example.com/app",
        "https://app.example.com?x=1",
        "https://user@app.example.com",
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://app.example.com:99999",
    ],
)
def test_cors_allowed_origins_refuse_anything_but_an_origin(origin):
    with pytest.raises(ValidationError, match="CORS_ALLOWED_ORIGINS takes origins like"):
        Settings(cors_allowed_origins=origin)


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


@pytest.mark.parametrize(
    "field",
    [
        "sign_in_attempts_per_account",
        "sign_in_attempts_per_address",
        "sign_up_attempts_per_address",
    ],
)
def test_rate_limits_are_checked_at_start_up(field):
    assert getattr(Settings(**{field: "3/minute"}), field) == "3/minute"
    with pytest.raises(ValidationError, match="not a rate limit such as 10/hour or 30/5minutes"):
        Settings(**{field: "ten per hour"})


def test_metrics_are_served_by_default_outside_production_only():
    assert Settings(app_env="development").serves_metrics
    assert Settings(app_env="test", jwt_secret=SECRET).serves_metrics
    assert not Settings(app_env="production", jwt_secret=SECRET).serves_metrics
    assert not Settings(app_env="development", metrics_enabled=False).serves_metrics


def test_metrics_in_production_need_a_token():
    with pytest.raises(ValidationError, match="METRICS_ENABLED=true with APP_ENV=production"):
        Settings(app_env="production", jwt_secret=SECRET, metrics_enabled=True)
    token = "t" * 16
    on = Settings(
        app_env="production", jwt_secret=SECRET, metrics_enabled=True, metrics_token=token
    )
    assert on.serves_metrics and on.metrics_token == token
    assert token not in repr(on)


@pytest.mark.parametrize(
    ("token", "problem"),
    [("short", "at least 16 characters"), ("with a space inside it", "must not contain spaces")],
)
def test_metrics_token_is_checked(token, problem):
    with pytest.raises(ValidationError, match=problem):
        Settings(metrics_token=token)
    assert Settings(metrics_token="").metrics_token is None


def test_worker_metrics_port_is_off_by_default_and_in_range():
    assert Settings().worker_metrics_port is None
    assert Settings().worker_metrics_host == "127.0.0.1"
    with pytest.raises(ValidationError, match="less than or equal to 65535"):
        Settings(worker_metrics_port=70_000)
