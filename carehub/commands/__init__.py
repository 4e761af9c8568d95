"""One module per ``carehub`` subcommand; each exposes ``register(subparsers)``.

To add a command, write ``carehub/commands/NAME.py`` with a ``register``
function that adds its parser and sets ``func`` (args -> exit code), then
list the module below.
"""

from __future__ import annotations

from types import ModuleType

from carehub.commands import (  # noqa: E402
    audit,
    config,
    consent,
    convert,
    db,
    demo,
    dlq,
    orders,
    packet,
    part2,
    routes,
    run,
    scorecard,
    subscribe,
    subscriptions,
    token,
    validate,
)

COMMANDS: list[ModuleType] = [
    run, demo, convert, validate, routes, packet, dlq, subscribe, subscriptions, consent, audit, part2, token, config,
    db, scorecard, orders,
]  # fmt: skip
