"""Small typed readers for settings that come from the environment; malformed values fail loudly."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def data_dir(base_dir: Path) -> Path:
    """Where the database and every file live; created on first use."""
    path = Path(env_str("DATA_DIR") or base_dir / "data").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_key(data: Path) -> str:
    """SECRET_KEY from the environment, else generated once and kept in DATA_DIR (mode 600)."""
    configured = env_str("SECRET_KEY")
    if configured:
        return configured
    key_file = data / "secret_key"
    if not key_file.exists():
        try:  # O_EXCL: web and worker starting together on a shared DATA_DIR agree on one key
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
    for _ in range(50):  # the other process may still be writing it
        key = key_file.read_text().strip()
        if key:
            return key
        time.sleep(0.1)
    raise ImproperlyConfigured(f"{key_file} is empty; delete it or set SECRET_KEY")
