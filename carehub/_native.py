"""The hot modules compiled ahead (mypyc), used only while they match their sources.

``setup.py`` compiles the modules in ``MODULES`` (the same ``.py`` files, nothing else to maintain)
when the build has mypyc and a C compiler, and writes ``_native.json`` beside this file: the SHA-256
of each source it compiled. Python prefers an extension module to the ``.py`` beside it, so an
edited source would otherwise keep running its old compiled code: ``install()`` (run by
``carehub/__init__.py`` before any of them is imported) checks the sources against that record and,
when any one differs or the record is missing, has every module in the list load from its ``.py``.
All or none: compiled modules call each other directly, not through their Python modules.
``make setup`` compiles them again after a change.

Which modules: the conversion (HL7v2 to FHIR) and the route stage's synchronous computation (routing
decisions, Part 2 labelling and the consent gate, plans, notification and packet building), the
stream worker's CPU per message. Never a module with coroutines: compiled, the stages' handlers raised
an exception left over from another coroutine and an ``await`` inside a comprehension failed
("cannot reuse already awaited coroutine"; docs/benchmarks.md, session 11), so the stages, the
delivery flow and the outbox stay Python and call into the compiled modules. A compiled function checks
its annotations at run time (a ``Payload`` passed where a ``dict`` is declared is a ``TypeError``), so
what a module takes from outside (a record's fields as read) is declared as what it may be.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType

MODULES = (
    "carehub.adapters.hl7.header",
    "carehub.adapters.hl7.tokenizer",
    "carehub.core.clock",
    "carehub.core.memo",
    "carehub.core.metrics",
    "carehub.core.patient",
    "carehub.core.payload",
    "carehub.core.uuids",
    "carehub.journal.audit",
    "carehub.mappings.care_event",
    "carehub.mappings.codes",
    "carehub.mappings.compiler",
    "carehub.mappings.context",
    "carehub.mappings.convert",
    "carehub.mappings.identity",
    "carehub.mappings.ids",
    "carehub.mappings.merge",
    "carehub.mappings.plan",
    "carehub.mappings.postprocess",
    "carehub.mappings.transforms.coded",
    "carehub.mappings.transforms.contact",
    "carehub.mappings.transforms.datetimes",
    "carehub.mappings.transforms.identifiers",
    "carehub.mappings.transforms.location",
    "carehub.mappings.transforms.text",
    "carehub.streams.charlson",
    "carehub.streams.consent.audit",
    "carehub.streams.consent.enforce",
    "carehub.streams.consent.gate",
    "carehub.streams.consent.labels",
    "carehub.streams.consent.policy",
    "carehub.streams.consent.positions",
    "carehub.streams.consent.sticky",
    "carehub.streams.consent.valueset",
    "carehub.streams.corrections",
    "carehub.streams.facts",
    "carehub.streams.normalize",
    "carehub.streams.notify",
    "carehub.streams.packet.careplan",
    "carehub.streams.packet.document",
    "carehub.streams.packet.sections",
    "carehub.streams.plan",
    "carehub.streams.referrals",
    "carehub.streams.risk",
    "carehub.streams.routing.decide",
    "carehub.streams.routing.match",
    "carehub.streams.routing.resolve",
    "carehub.streams.signals",
)
# os.path rather than pathlib, and no importlib.abc (which imports importlib.resources): every carehub
# process runs this first.
_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)
#: The record of a compiled build: module name -> SHA-256 of the source it was compiled from.
RECORD = os.path.join(_HERE, "_native.json")


def source_of(module: str) -> str:
    return os.path.join(_ROOT, *module.split(".")) + ".py"


def digests() -> dict[str, str]:
    """SHA-256 of each module's source as it is now."""
    found = {}
    for name in MODULES:
        with open(source_of(name), "rb") as source:
            found[name] = hashlib.sha256(source.read()).hexdigest()
    return found


def _matches() -> bool:
    try:
        with open(RECORD, encoding="utf-8") as record:
            recorded = json.load(record)
    except (OSError, ValueError):
        return False
    try:
        return bool(recorded == digests())
    except OSError:  # a source missing: an install that ships the compiled modules alone
        return False


class _FromSource:
    """Finds the modules of ``MODULES`` as their ``.py`` files (never the extension beside them)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        source = source_of(fullname)
        if not os.path.isfile(source):
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, importlib.machinery.SourceFileLoader(fullname, source), origin=source
        )
        spec.has_location = True  # __file__ and a cached .pyc, as for any module found on the path
        return spec


_state: dict[str, bool] = {}


def install() -> None:
    """Decide once per process: the compiled modules when they match their sources, else the ``.py`` files."""
    if "compiled" in _state:
        return
    _state["compiled"] = _matches()
    if not _state["compiled"]:
        sys.meta_path.insert(0, _FromSource())


def compiled() -> bool:
    """Whether this process runs the compiled modules (for the bench's report)."""
    install()
    return _state["compiled"] and all(
        not str(getattr(sys.modules.get(name), "__file__", "") or "").endswith(".py") for name in MODULES
    )
