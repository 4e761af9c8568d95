"""FHIR subscription bookkeeping (pure): events-since-start gaps, heartbeat timeouts, health.

``state`` is what is kept per subscription (in a streams.store table, i.e. a compacted
Kafka topic), ``observe`` decides what a notification or a timer tick means
for it, ``config`` reads config/subscriptions.yaml, ``deps`` declares what the
agent needs from the outside (a reader per source server).
"""
