"""The stream processors: Faust agents wiring topics to pure decision functions."""
