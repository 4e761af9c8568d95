"""42 CFR Part 2 (2024 rule) in the stream: labels, consents, decisions, redaction, notice, audit.

Everything here is pure: functions of (event, recipient, consents, config, time)
that return a decision with its reason. Agents and stores wire them.
"""
