"""FHIR Subscriptions rest-hook receiver: R4 Backport and R5 notification Bundles.

``notification`` reads a Bundle (pure), ``errors`` maps failures to HTTP
status and OperationOutcome in one place, ``receiver`` is the aiohttp edge
that answers 2xx only after the notification is durably on Kafka.
"""
