"""Every problem in every file ``carehub run`` loads from a config directory, at once, with file and line.

``carehub routes validate DIR`` prints these. ``run`` loads the same files with the same
loaders and refuses to start on the first problem, so a directory that validates is one
that runs: carehub.yaml (settings), routes.yaml, recipients.yaml and rosters/ (the routing
map and directory), part2.yaml (the Part 2 registry and policy), subscriptions.yaml and
packet.yaml (transition-of-care packets).
"""

from __future__ import annotations

from pathlib import Path

from carehub.core.configfile import file_problems
from carehub.core.errors import ConfigError
from carehub.core.settings import SETTINGS_FILE, load_settings
from carehub.streams.consent.policy import PART2_FILE, load_policy
from carehub.streams.packet.step import FILE as PACKET_FILE
from carehub.streams.packet.step import load_packet_settings
from carehub.streams.routing.load import check_config_dir
from carehub.streams.subscriptions.config import FILE as SUBSCRIPTIONS_FILE
from carehub.streams.subscriptions.config import load_subscriptions


def _first(load: object, *args: object) -> list[ConfigError]:
    assert callable(load)
    try:
        load(*args)
    except ConfigError as exc:
        return [exc]
    return []


def _file(config_dir: Path, name: str, schema: str, load: object) -> list[ConfigError]:
    """All schema problems of an optional file, then what its loader finds beyond the schema."""
    path = config_dir / name
    if not path.exists():
        return []
    return file_problems(path, schema) or _first(load, config_dir)


def _load_packet(config_dir: Path) -> object:
    try:
        subscriptions = load_subscriptions(config_dir)
    except ConfigError:
        subscriptions = None  # reported by its own check; the packet file is checked for itself
    return load_packet_settings(config_dir, subscriptions)


def check_all(config_dir: Path) -> list[ConfigError]:
    found = [
        *_file(config_dir, SETTINGS_FILE, "settings.schema.json", load_settings),
        *check_config_dir(config_dir),
        *_file(config_dir, PART2_FILE, "part2.schema.json", load_policy),
        *_file(config_dir, SUBSCRIPTIONS_FILE, "subscriptions.schema.json", load_subscriptions),
        *_file(config_dir, PACKET_FILE, "packet.schema.json", _load_packet),
    ]
    return list({str(p): p for p in found}.values())
