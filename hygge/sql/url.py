"""A database URL: which dialect, where it points, and errors that never show the password."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from hygge.errors import ConfigError
from hygge.secrets import mask_url

DIALECTS = {
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "pgsql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
}
DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}


@dataclass(frozen=True)
class SqlUrl:
    """A parsed connection URL. `url` holds the secret; use `masked` in anything shown."""

    url: str
    dialect: str
    driver: str | None
    host: str | None
    port: int | None
    database: str | None
    user: str | None
    password: str | None

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    def where(self) -> str:
        """'host 127.0.0.1, port 5432, database test' (or the file, for SQLite)."""
        if self.dialect == "sqlite":
            return f"file {self.database or ':memory:'}"
        return f"host {self.host or 'localhost'}, port {self.port}, database {self.database}"

    def scrub(self, text: str) -> str:
        """`text` with this URL's password masked, however a driver quoted it."""
        text = mask_url(text)
        if self.password:
            text = text.replace(self.password, "***")
        return text

    def libpq(self) -> str:
        """The URL as libpq (and ADBC's PostgreSQL driver) take it; a host that never
        answers fails after 10 s (then the flow's retries apply) instead of hanging."""
        url = re.sub(r"^[a-zA-Z0-9+]+://", "postgresql://", self.url, count=1)
        if "connect_timeout=" not in url:
            url += ("&" if "?" in url else "?") + "connect_timeout=10"
        return url

    def sqlalchemy(self) -> str:
        """The URL for SQLAlchemy, with a driver we ship when none is named."""
        scheme, rest = self.url.split("://", 1)
        if "+" in scheme:
            return self.url
        default = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
        return f"{default.get(self.dialect, scheme)}://{rest}"


def parse_url(url: str | None, what: str) -> SqlUrl:
    """Parse `url` (default: $DATABASE_URL); `what` names the connector for messages."""
    url = url or os.environ.get("DATABASE_URL")
    if not url:
        raise ConfigError(
            f"{what}: no `connection` given and DATABASE_URL is not set",
            hint="set `connection: postgresql://user@host/db` or export DATABASE_URL",
        )
    if "://" not in url:
        raise ConfigError(
            f"{what}: `connection` must be a URL like postgresql://user:password@host/db, "
            f"got {mask_url(url)!r}"
        )
    scheme = url.split("://", 1)[0].lower()
    base, _, driver = scheme.partition("+")
    dialect = DIALECTS.get(base, base)
    if dialect == "sqlite":
        path = url.split("://", 1)[1]
        database = path[1:] if path.startswith("/") else path
        return SqlUrl(url, dialect, driver or None, None, None, database or None, None, None)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what}: the port in {mask_url(url)} is not a number") from None
    return SqlUrl(
        url=url,
        dialect=dialect,
        driver=driver or None,
        host=parts.hostname,
        port=port or DEFAULT_PORTS.get(dialect),
        database=unquote(parts.path.lstrip("/")) or None,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
