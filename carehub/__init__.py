"""The composition root: CLI, process wiring and the embedded-broker launcher.

Nothing imports this package; it imports every room and wires them."""
