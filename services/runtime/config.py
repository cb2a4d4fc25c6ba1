"""Configuration: defaults < TOML file < `FOUNDATION_*` environment < explicit overrides.

The TOML file is named by `--config` or `FOUNDATION_CONFIG`. Sections mirror the fields below
(`[limiter]`, `[store]`, …); environment variables use `__` between levels, e.g.
`FOUNDATION_LIMITER__PORT=7201`, `FOUNDATION_DATABASE_URL=postgresql://postgres@127.0.0.1/foundation`.
A bad value stops the process with one line naming the field and the problem (`ConfigError`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

SERVICE_NAMES = ("signals", "limiter", "cache", "pool", "gateway")
"""Every process of the suite, in start order."""


class ConfigError(Exception):
    """A configuration problem, phrased for a person: `<field>: <problem>`."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSettings(_Section):
    """Network and admission settings shared by every service process."""

    host: str = "127.0.0.1"
    port: int = Field(ge=0, le=65535)
    metrics_port: int | None = Field(
        default=None,
        ge=-1,
        le=65535,
        description="Prometheus port; default port+100 (0 if port is 0); -1: off",
    )
    max_in_flight: int = Field(
        default=512,
        ge=1,
        description="per-method bound on unary calls in flight; beyond it RESOURCE_EXHAUSTED",
    )
    max_streams: int = Field(default=1000, ge=1, description="per-method bound on open streams")
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)

    def resolved_metrics_port(self) -> int | None:
        """The port to serve metrics on, or None when disabled."""
        if self.metrics_port == -1:
            return None
        if self.metrics_port is not None:
            return self.metrics_port
        return 0 if self.port == 0 else self.port + 100


class LimiterSettings(ServiceSettings):
    port: int = Field(default=7101, ge=0, le=65535)
    max_keys: int = Field(default=1_000_000, ge=1, description="bound on stored key state (resource manager)")
    sweep_interval_s: float = Field(default=300.0, gt=0, description="how often expired state is deleted")
    sweep_batch: int = Field(default=5000, ge=1, description="rows deleted per sweep statement")
    store_timeout_ms: int = Field(
        default=1000, ge=1, description="longest a Check waits for the store before its failure mode applies"
    )
    envoy_config: Path | None = Field(default=None, description="Envoy ratelimit-style YAML of domains")


class CacheSettings(ServiceSettings):
    port: int = Field(default=7102, ge=0, le=65535)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    default_max_entries: int = Field(default=100_000, ge=1)


class PoolSettings(ServiceSettings):
    port: int = Field(default=7103, ge=0, le=65535)
    allowed_hosts: list[str] = Field(default_factory=list, description="hosts pools may target; empty: any")


class SignalsSettings(ServiceSettings):
    port: int = Field(default=7104, ge=0, le=65535)


class GatewaySettings(ServiceSettings):
    port: int = Field(default=7100, ge=0, le=65535)
    http_port: int = Field(default=7080, ge=0, le=65535)


class StoreSettings(_Section):
    """The group-commit writer and the connections (see DESIGN.md §4, store)."""

    writer_queue: int = Field(default=10_000, ge=1, description="bounded queue; full → RESOURCE_EXHAUSTED")
    max_batch: int = Field(default=256, ge=1, description="most operations in one transaction")
    max_batch_rows: int = Field(
        default=2000,
        ge=1,
        description="most rows (operations' weights, e.g. a Check's items) in one transaction: smaller "
        "transactions let the event loop answer one batch while the writer runs the next",
    )
    batch_window_us: int = Field(
        default=2000, ge=0, description="longest the writer waits for a batch to grow"
    )
    batch_step_us: int = Field(default=200, ge=1, description="sleep step while the queue keeps growing")
    batch_target: int = Field(default=64, ge=1, description="stop waiting once this many are queued")
    statement_timeout_ms: int = Field(default=5000, ge=1, description="PG statement_timeout / SQLite busy")
    read_threads: int = Field(default=4, ge=1, description="threads (and connections) for reads")
    sqlite_cache_mib: int = Field(
        default=16, ge=1, description="SQLite page cache per connection (grows only as pages are read)"
    )
    sqlite_checkpoint_ms: int = Field(
        default=100,
        ge=0,
        description="SQLite: WAL checkpoints run on a thread of their own, at most this often; 0 leaves "
        "them to the committing writer (SQLite's default, every 1,000 pages)",
    )
    migrate_on_start: bool = True


class ResourceSettings(_Section):
    """The resource manager (the seed's ResourceManager)."""

    measure_interval_s: float = Field(default=5.0, gt=0)
    moderate_ratio: float = Field(default=0.9, gt=0, le=1)
    severe_ratio: float = Field(default=0.95, gt=0, le=1)


class Settings(BaseSettings):
    """All settings of the suite. Every process reads the same file; each uses its own section."""

    model_config = SettingsConfigDict(
        env_prefix="FOUNDATION_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database_url: str = Field(
        default="sqlite:///data/foundation.db",
        description="sqlite:///path.db or postgresql://user@host:port/db (psycopg 3 is used)",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    shutdown_grace_s: float = Field(default=5.0, ge=0)
    startup_timeout_s: float = Field(default=30.0, gt=0)

    store: StoreSettings = StoreSettings()
    resources: ResourceSettings = ResourceSettings()
    signals: SignalsSettings = SignalsSettings()
    limiter: LimiterSettings = LimiterSettings()
    cache: CacheSettings = CacheSettings()
    pool: PoolSettings = PoolSettings()
    gateway: GatewaySettings = GatewaySettings()

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, url: str) -> str:
        url = url.strip()
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        if url.startswith(("sqlite://", "postgresql+psycopg://")):
            return url
        raise ValueError("must start with sqlite:// or postgresql://")

    def service(self, name: str) -> ServiceSettings:
        """The section of one service process by name (`limiter`, …)."""
        if name not in SERVICE_NAMES:
            raise KeyError(name)
        section: ServiceSettings = getattr(self, name)
        return section

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _toml_file.get(settings_cls)
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


_toml_file: dict[type[BaseSettings], Path] = {}


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Reads settings; raises ConfigError with one line naming the bad field.

    `config_file` defaults to `$FOUNDATION_CONFIG`; `overrides` win over everything (tests use them).
    """
    path_text = str(config_file) if config_file is not None else os.environ.get("FOUNDATION_CONFIG")
    path = Path(path_text) if path_text else None
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path}: not found")

    class _FileSettings(Settings):
        pass

    if path is not None:
        _toml_file[_FileSettings] = path
    try:
        return Settings.model_validate(_FileSettings(**overrides).model_dump())
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # TOML syntax errors and the like
        raise ConfigError(f"config file {path}: {exc}") from None
    finally:
        _toml_file.pop(_FileSettings, None)


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        value = error.get("input")
        shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
        problems.append(f"{field}: {message}{shown}")
    return "invalid configuration: " + "; ".join(problems)
