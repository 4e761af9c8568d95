"""Resident memory and CPU time of the bench's processes, read from /proc (Linux)."""

from __future__ import annotations

import os
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used so far (nan when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")
