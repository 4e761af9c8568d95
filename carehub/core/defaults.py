"""Where the shipped defaults are: the sample config (with its JSON Schemas) and the demo feed.

They live in the repository as ``config/`` and ``demo/``, where operators and
tests read and edit them. A wheel carries a copy as package data in
``carehub/core/shipped/`` (setup.py's build step copies them there), so an installed
carehub needs no checkout: ``shipped("config")`` is that copy when it exists
and the repository's folder otherwise.
"""

from __future__ import annotations

from pathlib import Path

#: The trees a wheel ships (setup.py copies each into carehub/core/shipped/<name>).
SHIPPED_TREES = ("config", "demo")
PACKAGED = Path(__file__).resolve().parent / "shipped"
CHECKOUT = Path(__file__).resolve().parents[2]


def shipped(name: str) -> Path:
    """The directory of a shipped tree: package data in a wheel, the checkout's folder in a source tree."""
    if name not in SHIPPED_TREES:
        raise ValueError(f"not a shipped tree: {name!r}")
    packaged = PACKAGED / name
    return packaged if packaged.is_dir() else CHECKOUT / name
