"""database_url: uni-api's environment variables; masking of passwords."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from unigate.stats.store import StatsStore, StatsStoreError, database_url, describe_error, mask_url


def test_default_is_sqlite_in_data_dir() -> None:
    assert database_url({}) == "sqlite+aiosqlite:///./data/stats.db"
    assert database_url({"DB_TYPE": "sqlite", "DB_PATH": "/var/lib/x.db"}) == "sqlite+aiosqlite:////var/lib/x.db"
    assert database_url({"DB_PATH": "rel/x.db"}) == "sqlite+aiosqlite:///rel/x.db"


@pytest.mark.parametrize("value", ["true", "TRUE", " true "])
def test_disable_database(value: str) -> None:
    assert database_url({"DISABLE_DATABASE": value, "DATABASE_URL": "postgres://u:p@h/d"}) is None


@pytest.mark.parametrize("value", ["false", "1", "yes", ""])
def test_only_true_disables(value: str) -> None:
    assert database_url({"DISABLE_DATABASE": value}) is not None


def test_postgres_from_uni_api_variables_with_their_defaults() -> None:
    assert database_url({"DB_TYPE": "postgres"}) == (
        "postgresql+asyncpg://postgres:mysecretpassword@localhost:5432/postgres"
    )
    url = database_url(
        {
            "DB_TYPE": "postgres",
            "DB_USER": "stats",
            "DB_PASSWORD": "p@ss:w/rd%",
            "DB_HOST": "db.internal",
            "DB_PORT": "6543",
            "DB_NAME": "gateway",
        }
    )
    assert url is not None
    parsed = make_url(url)
    assert (parsed.drivername, parsed.username, parsed.password) == ("postgresql+asyncpg", "stats", "p@ss:w/rd%")
    assert (parsed.host, parsed.port, parsed.database) == ("db.internal", 6543, "gateway")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5433/db", "postgresql+asyncpg://u:p@h:5433/db"),
        ("postgresql://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql+asyncpg://u:p@h/db", "postgresql+asyncpg://u:p@h/db"),
        ("postgresql://u:p@h/db?sslmode=require", "postgresql+asyncpg://u:p@h/db?ssl=require"),
        ("sqlite:///data/x.db", "sqlite+aiosqlite:///data/x.db"),
    ],
)
def test_database_url_wins_and_is_normalised(given: str, expected: str) -> None:
    assert database_url({"DATABASE_URL": given, "DB_TYPE": "sqlite", "DB_PATH": "/other.db"}) == expected


def test_bad_settings_are_errors_without_the_value() -> None:
    with pytest.raises(ValueError, match="DB_TYPE"):
        database_url({"DB_TYPE": "mysql"})
    with pytest.raises(ValueError, match="DB_PORT"):
        database_url({"DB_TYPE": "postgres", "DB_PORT": "five"})
    with pytest.raises(ValueError) as info:
        database_url({"DATABASE_URL": "not a url with hunter2secret"})
    assert "hunter2" not in str(info.value)


def test_mask_url_hides_the_password() -> None:
    masked = mask_url("postgresql+asyncpg://u:hunter2secret@h/db")
    assert "hunter2" not in masked and "***" in masked
    assert mask_url("sqlite+aiosqlite:///x.db") == "sqlite+aiosqlite:///x.db"


def test_describe_error_is_one_masked_line_without_sql() -> None:
    orig = Exception("could not connect with password hunter2secret\nDETAIL: row (sk-abcdefghijklmnopqrst)")
    exc = OperationalError("INSERT INTO request_stats VALUES (?)", {"content": "private"}, orig)
    text = describe_error(exc, ["hunter2secret"])
    assert text == "Exception: could not connect with password ***"
    assert "INSERT" not in text and "private" not in text


@pytest.mark.anyio
async def test_open_failure_names_the_database_but_not_its_password() -> None:
    store = StatsStore("postgresql+asyncpg://postgres:hunter2secret@127.0.0.1:1/test")
    assert "hunter2" not in store.display_url and store.secrets == ("hunter2secret",)
    with pytest.raises(StatsStoreError) as info:
        await store.open()
    assert "127.0.0.1:1" in str(info.value)
    assert "hunter2" not in str(info.value)


@pytest.mark.anyio
async def test_unsupported_backend() -> None:
    with pytest.raises(StatsStoreError, match="unsupported"):
        await StatsStore("mysql+aiomysql://u:p@h/db").open()
