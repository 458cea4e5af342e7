"""Create .env with fresh server secrets on the first run; later runs keep them."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

GENERATED = ("MASTER_KEY", "WEBHOOK_SECRET", "PROVIDER_TOKEN")

HEADER = """\
# signalbridge secrets: this file is read at start-up and never committed (mode 600).
# BOT_TOKEN comes from @BotFather in Telegram (/newbot); put it here:
# BOT_TOKEN=123456789:AA...
"""


def _present(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip().removeprefix("export ").strip())
    return names


def ensure_env_file(path: Path) -> list[str]:
    """Add any missing generated secret to ``path``; return the names added."""
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    present = _present(existing or "")
    missing = [name for name in GENERATED if name not in present and name not in os.environ]
    if not missing:
        return []
    lines = [f"{name}={secrets.token_urlsafe(32)}" for name in missing]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if existing is None:
            handle.write(HEADER)
        elif existing and not existing.endswith("\n"):
            handle.write("\n")
        handle.write("\n".join(lines) + "\n")
    path.chmod(0o600)
    return missing


def main() -> int:
    path = Path(os.environ.get("ENV_FILE", ".env"))
    created = not path.exists()
    added = ensure_env_file(path)
    if added:
        verb = "created" if created else "updated"
        print(f"{verb} {path} (mode 600) with fresh {', '.join(added)}; keep it private")
    return 0


if __name__ == "__main__":
    sys.exit(main())
