"""The composition root: CLI, process wiring and the embedded-broker launcher.

Nothing imports this package; it imports every room and wires them. Importing any of its modules
runs this first: the compiled hot modules are used only while they match their sources (``_native``)."""

from carehub import _native

_native.install()
