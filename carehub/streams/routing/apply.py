"""Staged apply: validate a routing config directory, then install it into the watched one.

For teams that do not want save-to-deploy: edit a staging copy, then
``carehub routes apply STAGING --config-dir LIVE``. Nothing is installed when
the staging copy has any problem. Installing writes every file beside its
target first and then renames them into place (each rename is atomic), so
the hub's reloader never reads a half-written file; rosters the staging copy
no longer has are removed.
"""

from __future__ import annotations

import os
from pathlib import Path

from carehub.core.errors import ConfigError
from carehub.streams.routing.load import ROSTERS_DIR, check_config_dir, load_routing_map, watched_files
from carehub.streams.routing.rosters import roster_files

_STAGED = ".apply-tmp"
#: Touched after every install: a hub that does not watch the files (``routing.watch: false``) reloads on it.
APPLIED_STAMP = ".applied"


def apply_config(source: Path, target: Path) -> tuple[list[ConfigError], str]:
    """(problems, version): the problems of ``source`` (nothing installed), else [] and the installed version."""
    problems = check_config_dir(source)
    if problems:
        return problems, ""
    version = load_routing_map(source).version
    (target / ROSTERS_DIR).mkdir(parents=True, exist_ok=True)
    pairs = [(path, target / path.relative_to(source)) for path in watched_files(source)]
    for staged, final in pairs:
        final.with_name(final.name + _STAGED).write_bytes(staged.read_bytes())
    for _, final in pairs:
        os.replace(final.with_name(final.name + _STAGED), final)
    kept = {final for _, final in pairs}
    for old in roster_files(target / ROSTERS_DIR):
        if old not in kept:
            old.unlink()
    stamp = target / (APPLIED_STAMP + _STAGED)
    stamp.write_text(version + "\n", encoding="utf-8")
    os.replace(stamp, target / APPLIED_STAMP)
    return [], version
