"""One Settings object for the whole program.

Precedence, lowest first: built-in defaults, a TOML file (``ABATHUR_CONFIG`` or the per-user
config path), ``ABATHUR_*`` environment variables, then explicit overrides (CLI flags).
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from abathur_memory.errors import InvalidInput

APP_DIR_NAME = "abathur-memory"
ENV_PREFIX = "ABATHUR_"


def default_data_dir() -> Path:
    """Per-user data directory (platform specific) that holds the default database."""
    return Path(platformdirs.user_data_dir(APP_DIR_NAME, appauthor=False))


def default_db_path() -> Path:
    return default_data_dir() / "abathur.db"


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir(APP_DIR_NAME, appauthor=False)) / "config.toml"


def _login_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): a stable fallback
        return "default"


class Settings(BaseModel):
    """Everything configurable. Field names map to ``ABATHUR_<NAME>`` variables."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    db: str = Field(
        default_factory=lambda: str(default_db_path()),
        min_length=1,
        description="SQLite database file (a path or sqlite:///path) or a postgresql:// URL",
    )
    busy_timeout_ms: int = Field(5000, ge=0, le=600_000, description="SQLite busy_timeout")
    pg_pool_min: int = Field(1, ge=0, le=256, description="PostgreSQL: connections kept open")
    pg_pool_max: int = Field(10, ge=1, le=256, description="PostgreSQL: most connections")
    pg_pool_timeout_s: float = Field(
        30.0, gt=0, le=600, description="PostgreSQL: longest wait for a pooled connection"
    )
    pg_statement_timeout_ms: int = Field(
        30_000, ge=0, le=3_600_000, description="PostgreSQL: statement_timeout (0: none)"
    )
    pg_lock_timeout_ms: int = Field(
        10_000, ge=0, le=3_600_000, description="PostgreSQL: lock_timeout (0: none)"
    )
    pg_index_build_mb: int = Field(
        4096,
        ge=64,
        le=1_048_576,
        description="PostgreSQL: most maintenance_work_mem a vector index build may ask for",
    )
    write_retries: int = Field(3, ge=0, le=20, description="retries after busy_timeout expires")
    readers: int = Field(4, ge=1, le=64, description="read connections per process")
    ann: bool = Field(
        True, description="SQLite: an approximate (IVF) index for large vector tables"
    )
    ann_min_vectors: int = Field(
        20_000,
        ge=1,
        le=1_000_000_000,
        description="SQLite: vector tables at least this large use the approximate index",
    )
    ann_selective_fraction: float = Field(
        0.01,
        ge=0,
        le=1,
        description="SQLite: filters keeping fewer than this share of the vectors search "
        "them exactly",
    )
    user: str = Field(default_factory=_login_name, min_length=1, max_length=128)
    app: str = Field("abathur", min_length=1, max_length=128)
    project: str | None = Field(None, min_length=1, max_length=128)
    admin: bool = Field(False, description="lift the namespace policy (read/write everything)")
    max_value_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    max_reply_bytes: int = Field(
        1024 * 1024,
        ge=16 * 1024,
        le=256 * 1024 * 1024,
        description="about the most JSON one list or search reply carries; a longer page "
        "ends early with next_cursor",
    )
    max_listed_value_bytes: int = Field(
        4096,
        ge=64,
        le=16 * 1024 * 1024,
        description="listings and search hits cut a longer value (marked in truncated); "
        "the get tools return it whole",
    )
    log_level: str = Field("WARNING", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")
    disabled_tools: list[Literal["memory", "sessions", "tasks", "documents"]] = Field(
        default_factory=list, description="tool groups the MCP server does not offer"
    )
    docs: list[str] = Field(
        default_factory=list, description="markdown folders to index (DIR or NAME=DIR)"
    )
    exclude: list[str] = Field(
        default_factory=list, description="gitignore-style patterns never indexed"
    )
    embedder: Literal["embedded", "ollama", "fake"] = Field(
        "embedded", description="embedded (offline default), ollama, or fake (tests)"
    )
    embedder_idle_unload_s: float = Field(
        300.0,
        ge=0,
        le=7 * 24 * 3600,
        description="embedded model: free its memory after this many seconds unused "
        "(it loads again at the next embedding; 0: keep it loaded)",
    )
    ollama_host: str = Field("http://127.0.0.1:11434", min_length=1)
    ollama_model: str = Field("nomic-embed-text", min_length=1)
    chat_model: str = Field(
        "",
        pattern=r"^((ollama|openai):\S.*)?$",
        description="a chat model that helps consolidation and promotion: ollama:<model> or "
        "openai:<model> (any OpenAI-compatible endpoint); empty: none (the default)",
    )
    chat_base_url: str = Field(
        "",
        pattern=r"^(https?://\S+)?$",
        description="the chat model's endpoint: Ollama's host (default: ollama_host), or an "
        "OpenAI-compatible base URL such as http://127.0.0.1:8000/v1 (required for openai:)",
    )
    chat_api_key_env: str = Field(
        "ABATHUR_CHAT_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="the environment variable holding the chat endpoint's bearer key, if any",
    )
    chat_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="longest wait for one answer of the chat model"
    )
    chat_max_calls: int = Field(
        100, ge=1, le=100_000, description="most chat model calls per consolidation run"
    )
    max_file_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    watch: bool = Field(False, description="serve: keep the document roots indexed")
    watch_debounce_ms: int = Field(500, ge=0, le=60_000)
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="HTTP: close a connection whose request head (or then "
        "body) does not arrive within this many seconds",
    )
    http_keep_alive_s: float = Field(
        5.0, gt=0, le=600, description="HTTP: close an idle kept-alive connection after this"
    )
    maintenance_interval_hours: float = Field(
        24.0, ge=0, le=24 * 365, description="lifecycle maintenance period in serve (0: off)"
    )
    metrics: bool = Field(True, description="record every tool call and command (stats)")
    metrics_raw_hours: float = Field(
        24.0,
        gt=0,
        le=24 * 365,
        description="keep one metrics row per call this long, then one per minute",
    )
    metrics_retention_days: float = Field(
        30.0, gt=0, le=3650, description="drop per-minute metrics older than this"
    )
    metrics_rollup_minutes: float = Field(
        10.0, gt=0, le=24 * 60, description="serve: how often the rollup and pruning run"
    )

    @model_validator(mode="after")
    def _listed_within_reply(self) -> Settings:
        if self.max_listed_value_bytes > self.max_reply_bytes:
            raise ValueError("max_listed_value_bytes cannot be larger than max_reply_bytes")
        if self.chat_model.startswith("openai:") and not self.chat_base_url:
            # memories leave the machine only for an endpoint named on purpose
            raise ValueError(
                "chat_model openai:... needs chat_base_url (e.g. https://api.openai.com/v1 "
                "or http://127.0.0.1:8000/v1)"
            )
        return self

    @field_validator("db", mode="before")
    @classmethod
    def _db_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, Path) else value

    @property
    def is_postgres(self) -> bool:
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def db_path(self) -> Path:
        """The SQLite file (InvalidInput for a PostgreSQL URL)."""
        if self.is_postgres:
            raise InvalidInput(
                "this command works on a SQLite database file; --db is a PostgreSQL URL"
            )
        if self.db.startswith("sqlite:///"):
            return Path(self.db.removeprefix("sqlite://"))
        return Path(self.db).expanduser()

    @property
    def db_label(self) -> str:
        """The database as it may be shown: a path, or a URL without its password."""
        if not self.is_postgres:
            return str(self.db_path)
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(self.db)
        if parts.password is None:
            return self.db
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))

    @field_validator("disabled_tools", "docs", "exclude", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        """Lists may come as one comma-separated string (ABATHUR_DOCS=~/notes,~/work)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


def _env_values() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in Settings.model_fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = raw
    return values


def _toml_values(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read config file {path}: {exc}") from exc
    return data.get("abathur", data)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from file, environment and explicit overrides (None = not given)."""
    config_file = os.environ.get(ENV_PREFIX + "CONFIG")
    if config_file and not Path(config_file).is_file():
        raise InvalidInput(f"config file {config_file} (from {ENV_PREFIX}CONFIG) does not exist")
    values = _toml_values(Path(config_file) if config_file else default_config_path())
    values.update(_env_values())
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidInput(f"invalid settings: {problems}") from None
