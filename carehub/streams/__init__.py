"""The stream processors: consumer-group stages (streams.stage) wiring topics to pure decision functions."""
