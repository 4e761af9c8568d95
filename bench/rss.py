"""Resident memory of the bench's processes, read from /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (nan when it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("nan")


def rss_line(label: str, pids: dict[str, int]) -> str:
    return f"  {label}: " + ", ".join(f"{name} {rss_mb(pid):,.0f} MB" for name, pid in pids.items())
