"""Delivery policy: one attempt at a time, then a pure decision on what comes next.

The agents never sleep in-line on a failing recipient: after a transient
failure the delivery goes to a retry topic (one per backoff tier) with the time
its next attempt is due; permanent failures (4xx other than 408/425/429,
MLLP AR) and exhausted retries go to the delivery dead-letter topic. A circuit
breaker per endpoint stops hammering a recipient that keeps failing.
``deliver()`` is the in-line form (bounded retries with sleeps) kept for
one-shot use and tests of a destination.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from carehub.connectors.base import Destination
from carehub.core.clock import now_iso
from carehub.core.errors import DeliveryError
from carehub.core.records import Delivery, DeliveryOutcome
from carehub.core.topics import RETRY_TIERS

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_s: float = 0.2
    max_s: float = 30.0
    breaker_failures: int = 5
    breaker_reset_s: float = 10.0

    @property
    def longest_wait_s(self) -> float:
        """The most a retry record waits: a backoff, or a delivery held over two reset periods of its circuit."""
        return max(self.max_s, 2 * self.breaker_reset_s)

    def tier_wait_s(self, tier: int) -> float:
        """The most a record on retry tier ``tier`` waits (``next_step`` puts try n's backoff on tier n;
        the last tier also takes the later tries, Retry-After and the deliveries held by an open circuit)."""
        if tier >= RETRY_TIERS:
            return self.longest_wait_s
        return min(self.max_s, self.initial_s * 2.0 ** (tier - 1))

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Jitter above a floor: uniform in [max(initial, cap/2), cap], cap = min(max, initial * 2**(attempt-1)).

        Never less than ``initial_s``, so a failing recipient is not hammered by near-zero waits.
        """
        cap = min(self.max_s, self.initial_s * 2 ** (attempt - 1))
        return rng.uniform(min(cap, max(self.initial_s, cap / 2)), cap)


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try gave: success, or a failure that is permanent or not."""

    ok: bool
    status: int | None = None
    permanent: bool = False
    detail: str = ""
    #: The breaker was open: the recipient was not contacted; the try is not counted.
    skipped: bool = False
    #: The recipient's Retry-After, in seconds (transient answers only).
    retry_after_s: float | None = None

    @property
    def result(self) -> str:
        if self.ok:
            return "ok"
        if self.skipped:
            return "circuit-open"
        return "permanent" if self.permanent else "transient"


#: A try refused by an open circuit (the recipient was not contacted).
CIRCUIT_OPEN = Attempt(ok=False, detail="circuit open for this endpoint", skipped=True)


@dataclass(frozen=True, slots=True)
class NextStep:
    """The decision after an attempt, with its reason."""

    action: str  # "delivered" | "retry" | "dead-letter"
    reason: str
    attempts: int
    delay_s: float = 0.0
    tier: int = 0


def next_step(attempt: Attempt, number: int, policy: RetryPolicy, rng: random.Random) -> NextStep:
    """Decide after try ``number`` (1-based, skipped tries not counted)."""
    if attempt.ok:
        return NextStep("delivered", "", number)
    if attempt.permanent:
        return NextStep("dead-letter", f"permanent: {attempt.detail}", number)
    if number >= policy.max_attempts and not attempt.skipped:
        return NextStep("dead-letter", f"retries exhausted after {number} attempts: {attempt.detail}", number)
    if attempt.skipped:
        # Held by an open circuit: back no sooner than the next probe can decide, spread over one more reset
        # period, on the last tier; so a held delivery is touched about once per reset period, not per backoff.
        held_s = policy.breaker_reset_s * rng.uniform(1.0, 2.0)
        return NextStep("retry", attempt.detail, number, delay_s=held_s, tier=RETRY_TIERS)
    waits_for = max(number, 1)
    delay, tier = policy.backoff(waits_for, rng), min(waits_for, RETRY_TIERS)
    if attempt.retry_after_s is not None and attempt.retry_after_s > delay:
        # honoured up to backoff_max_s, on the last tier (whose bound that is), so no tier waits longer
        delay, tier = min(attempt.retry_after_s, policy.max_s), RETRY_TIERS
    return NextStep("retry", attempt.detail, number, delay_s=delay, tier=tier)


@dataclass
class _Circuit:
    failures: int = 0
    opened_at: float | None = None
    probing: bool = False


#: Called with (endpoint, new state) on every change: "open", "half-open", "closed".
OnChange = Callable[[str, str], None]


def _ignore(endpoint: str, state: str) -> None:
    return None


@dataclass
class CircuitBreaker:
    """Per endpoint: open after ``failures`` transient failures in a row, probe after ``reset_s``.

    Each change of state is reported once to ``on_change`` (the delivery flow logs it); the
    deliveries held while the circuit is open are not reported one by one.
    """

    failures: int = 5
    reset_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    on_change: OnChange = _ignore
    _state: dict[str, _Circuit] = field(default_factory=dict)

    def allow(self, endpoint: str) -> bool:
        circuit = self._state.get(endpoint)
        if circuit is None or circuit.opened_at is None:
            return True
        if circuit.probing or self.clock() - circuit.opened_at < self.reset_s:
            return False
        circuit.probing = True  # half-open: one try decides
        self.on_change(endpoint, "half-open")
        return True

    def record(self, endpoint: str, ok: bool) -> None:
        circuit = self._state.setdefault(endpoint, _Circuit())
        if ok:
            self._state.pop(endpoint, None)
            if circuit.opened_at is not None:
                self.on_change(endpoint, "closed")
            return
        circuit.failures += 1
        was_probing, circuit.probing = circuit.probing, False
        if circuit.failures >= self.failures and (circuit.opened_at is None or was_probing):
            circuit.opened_at = self.clock()
            self.on_change(endpoint, "open")

    def holds(self, endpoint: str) -> bool:
        """True while a try to ``endpoint`` would be refused (open, not yet due to probe); changes nothing."""
        circuit = self._state.get(endpoint)
        if circuit is None or circuit.opened_at is None:
            return False
        return circuit.probing or self.clock() - circuit.opened_at < self.reset_s

    def is_open(self, endpoint: str) -> bool:
        circuit = self._state.get(endpoint)
        return circuit is not None and circuit.opened_at is not None


async def attempt_once(
    delivery: Delivery, destination: Destination, breaker: CircuitBreaker, timeout_s: float
) -> Attempt:
    """One bounded try through ``destination``; every error becomes an Attempt."""
    if not breaker.allow(delivery.endpoint):
        return CIRCUIT_OPEN
    try:
        async with asyncio.timeout(timeout_s):  # no task of its own per attempt, as wait_for makes
            status = await destination.send(delivery)
    except DeliveryError as exc:
        if not exc.permanent:
            breaker.record(delivery.endpoint, ok=False)
        return Attempt(
            ok=False, status=exc.status, permanent=exc.permanent, detail=exc.message, retry_after_s=exc.retry_after_s
        )
    except TimeoutError:
        breaker.record(delivery.endpoint, ok=False)
        return Attempt(ok=False, detail=f"no answer within {timeout_s:g} s")
    breaker.record(delivery.endpoint, ok=True)
    return Attempt(ok=True, status=status)


def outcome(delivery: Delivery, status: str, attempts: int, reason: str, http_status: int | None) -> DeliveryOutcome:
    return DeliveryOutcome(
        delivery_id=delivery.delivery_id,
        idempotency_key=delivery.idempotency_key,
        event_id=delivery.event_id,
        recipient_id=delivery.recipient_id,
        action=delivery.action,
        status=status,
        attempts=attempts,
        reason=reason,
        finished_at=now_iso(),
        http_status=http_status,
    )


async def deliver(
    delivery: Delivery,
    destination: Destination,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> DeliveryOutcome:
    """In-line form: send until success, a permanent error, or the attempts run out."""
    jitter = rng or random.Random()
    last: DeliveryError | None = None
    for attempt in range(1, policy.max_attempts + 1):
        try:
            status = await destination.send(delivery)
        except DeliveryError as exc:
            last = exc
            if exc.permanent:
                return outcome(delivery, "failed", attempt, f"permanent: {exc.message}", exc.status)
            if attempt < policy.max_attempts:
                await sleep(policy.backoff(attempt, jitter))
            continue
        return outcome(delivery, "delivered", attempt, "", status)
    reason = last.message if last else "no attempt made"
    return outcome(
        delivery, "failed", policy.max_attempts, f"retries exhausted: {reason}", last.status if last else None
    )
