"""One place that turns the Kafka settings into what each client library wants.

Every Kafka client carehub makes (aiokafka producers, consumers and admin,
kafka-python's admin) is built with the keyword arguments of
one :class:`KafkaSecurity`, so they all connect the same way:
``security_protocol`` PLAINTEXT (the embedded broker), SSL or SASL_SSL; SASL
PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 with a username and a password (from
the environment through ``${VAR}`` in carehub.yaml, or from a file); the CA
that verifies the brokers; a client certificate and key for mTLS. SASL
without TLS is not offered: PLAIN would send the password in clear.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carehub.core.errors import ConfigError
from carehub.core.settings import KafkaSettings

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ConfigError(f"kafka: {problem}", file="settings")

    def _problem(self) -> str | None:
        if self.protocol not in PROTOCOLS:
            return f"security_protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}"
        if self.protocol == "SASL_SSL":
            if self.mechanism not in MECHANISMS:
                return f"SASL_SSL needs sasl_mechanism {', '.join(MECHANISMS)}"
            if not self.username or not self.password:
                return "SASL_SSL needs sasl_username and sasl_password (or sasl_password_file)"
        elif self.mechanism:
            return "sasl_mechanism is set but security_protocol is not SASL_SSL"
        if bool(self.certfile) != bool(self.keyfile):
            return "ssl_certfile and ssl_keyfile go together"
        if self.protocol == "PLAINTEXT" and (self.cafile or self.certfile):
            return "ssl_* files are set but security_protocol is PLAINTEXT"
        return None

    @classmethod
    def from_settings(cls, kafka: KafkaSettings) -> KafkaSecurity:
        password = kafka.sasl_password
        if kafka.sasl_password_file:
            try:
                password = Path(kafka.sasl_password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"kafka: cannot read sasl_password_file: {exc.strerror}", file="settings") from exc
        return cls(
            protocol=kafka.security_protocol,
            mechanism=kafka.sasl_mechanism,
            username=kafka.sasl_username,
            password=password,
            cafile=kafka.ssl_cafile,
            certfile=kafka.ssl_certfile,
            keyfile=kafka.ssl_keyfile,
        )

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS 1.2+ verifying the brokers (the CA file, else the system store), with the client cert if given."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.certfile and self.keyfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.protocol == "SASL_SSL":
            kwargs.update(
                sasl_mechanism=self.mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password
            )
        return kwargs

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaAdminClient (and its other clients)."""
        kwargs: dict[str, Any] = {"security_protocol": self.protocol}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        if self.protocol == "SASL_SSL":
            kwargs.update(
                sasl_mechanism=self.mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password
            )
        return kwargs


PLAINTEXT = KafkaSecurity()
