"""One module per stage: each exposes ``handler(ctx, ...)``, the batch handler a streams.stage.Stage runs
(streams.app wires them: normalize, route, deliver, the retry tiers, audit, careplan, fhir_inbound)."""
