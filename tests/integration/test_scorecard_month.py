"""A simulated month through the real hub: the scorecard's rates against rates counted from the plan.

A generated population (admissions, ED visits, discharges, readmissions, late feeds, an A13 and A11
cancels, an A40 merge, a minor, a death) is played over MLLP into a hub on the real broker, on a
controlled clock (carehub.core.clock.travel_to: each message is sent at its planned receipt time and
finished before the next). The PCP, a real HTTP recipient, gets the notifications and Tasks; as the
PCP the test accepts, completes or rejects its Tasks through the hub's Task API at set delays. Then
``GET /fhir/MeasureReport`` (as of 2027-01-15, every window closed) must give exactly the numerators
and denominators counted here from the plan, without the scorecard's code; the LACE index on every
discharge notification must equal the one computed here by hand from the plan; high-LACE discharges
reach the payer by a ``risk: {lace: {gte: 10}}`` rule. One hub for the module.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.clock import set_clock, travel_to
from carehub.core.principal import OPS_READ, PHI_READ, TASK_READ, TASK_WRITE
from carehub.demo import wait_idle
from carehub.demo_receivers import DemoRecipient
from carehub.hub import Hub
from carehub.streams.referrals import KINDS
from tests.authkit import Issuer
from tests.conftest import CONFIG
from tests.integration.conftest import PCP_SECRET, hub_settings

pytestmark = pytest.mark.integration

SEED = 17
AS_OF = datetime(2027, 1, 15, 12, 0, tzinfo=UTC)
NOV_START, NOV_END = date(2026, 11, 1), date(2026, 11, 30)
#: Charlson weights of the codes the plan uses (one condition each; none is a milder form of another).
WEIGHTS = {"I50.9": 1, "J44.9": 1, "I21.4": 1, "E11.22": 2, "N18.4": 2, "C34.90": 2, "J18.9": 0, "R69": 0}
EXCLUDED_DISPOSITIONS = {"20", "40", "41", "42", "02", "05", "66"}
EXTRA_RULES = """
  - id: sim-med-rec
    description: (simulation) the PCP reconciles medications after an inpatient discharge.
    when:
      kind: [discharge]
      encounter_class: [IMP]
    actions:
      - task: {to: attributed:pcp, code: med-rec, due: {days: 7}}
  - id: sim-high-lace
    description: (simulation) a high-risk discharge goes to the payer's care management.
    when:
      kind: [discharge]
      risk: {lace: {gte: 10}}
    actions:
      - notify: payer-acme
"""


# the plan ----------------------------------------------------------------------------------------------
@dataclass
class Stay:
    visit: str
    admit_at: datetime
    discharge_at: datetime
    emergent: bool
    codes: list[str]
    disposition: str = "01"
    admit_lag: timedelta = timedelta(0)
    discharge_lag: timedelta = timedelta(0)
    #: An earlier discharge (sent, then cancelled by an A13 two hours later).
    false_discharge_at: datetime | None = None
    #: The PCP's behaviour: accept after hours, complete tcm-visit / med-rec after days (None: never).
    accept_h: float | None = None
    visit_done_d: float | None = None
    medrec_done_d: float | None = None
    reject_visit: bool = False


@dataclass
class Person:
    n: int
    mrn: str
    born: str
    pcp: bool
    stays: list[Stay] = field(default_factory=list)
    #: (time, visit, cancelled by A11, record mrn)
    ed_visits: list[tuple[datetime, str, bool, str]] = field(default_factory=list)
    clinic_visits: list[datetime] = field(default_factory=list)
    cancelled_admissions: list[tuple[datetime, str]] = field(default_factory=list)
    #: A retired record merged into this one at ``merged_at`` (its history precedes the merge).
    retired_mrn: str = ""
    merged_at: datetime | None = None
    #: Stays recorded under the retired record (index into stays).
    retired_stays: tuple[int, ...] = ()

    def record_of(self, stay_index: int) -> str:
        return self.retired_mrn if stay_index in self.retired_stays else self.mrn


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def generate() -> list[Person]:
    rnd = random.Random(SEED)
    people = []
    for i in range(12):
        minor = i == 7
        p = Person(i, f"SIM{i:03d}", "20120310" if minor else f"19{rnd.randint(40, 85)}0{rnd.randint(1, 9)}15",
                   pcp=i % 5 != 4)  # fmt: skip
        for k in range(i % 5):  # ED visits in the 6 months before (LACE E); one of them cancelled (A11)
            p.ed_visits.append((_at(date(2026, 5, 1) + timedelta(days=rnd.randint(0, 180)), 3 + k), f"ED{i}-{k}",
                                i % 3 == 1 and k == 0, p.mrn))  # fmt: skip
        admit = _at(NOV_START + timedelta(days=rnd.randint(0, 20)), rnd.randint(6, 11))
        los = rnd.choice([0, 1, 2, 3, 5, 8, 15])
        stay = Stay(f"V{i}A", admit, admit + timedelta(days=los, hours=rnd.randint(1, 6)), emergent=i % 2 == 0,
                    codes=rnd.sample(sorted(WEIGHTS), rnd.randint(0, 3)))  # fmt: skip
        stay.admit_lag = timedelta(days=3) if i % 6 == 1 else timedelta(0)
        stay.discharge_lag = timedelta(days=3) if i % 6 == 2 else timedelta(0)
        if i == 9:
            stay.disposition = "20"  # died: excluded
        if i % 7 == 3:
            stay.false_discharge_at = stay.discharge_at
            stay.discharge_at = stay.discharge_at + timedelta(days=2)
        behaviour = i % 4
        if behaviour in (0, 1):
            stay.accept_h = rnd.choice([1.0, 5.0, 20.0, 30.0])
            stay.visit_done_d = rnd.choice([2.0, 6.0, 9.0, 20.0])
            stay.medrec_done_d = rnd.choice([0.5, 3.0, 12.0, 35.0])
        elif behaviour == 2:
            stay.accept_h = 2.0
            stay.reject_visit = True
        p.stays.append(stay)
        if i % 4 == 0:  # readmitted
            again = stay.discharge_at + timedelta(days=rnd.choice([3, 10, 25, 40]), hours=2)
            p.stays.append(Stay(f"V{i}B", again, again + timedelta(days=2), emergent=True, codes=["J18.9"],
                                accept_h=3.0, visit_done_d=4.0, medrec_done_d=1.0))  # fmt: skip
        if i % 3 == 0:  # a clinic visit after the discharge
            p.clinic_visits.append(stay.discharge_at + timedelta(days=rnd.choice([0, 3, 6, 12, 40]), hours=1))
        if i % 5 == 2:  # an ED visit in November, sometimes admitted the next day
            ed = _at(NOV_START + timedelta(days=rnd.randint(20, 27)), 22)
            p.ed_visits.append((ed, f"ED{i}-N", False, p.mrn))
            if i % 10 == 2:
                p.stays.append(Stay(f"V{i}E", ed + timedelta(hours=5), ed + timedelta(days=3), emergent=True, codes=[]))
            else:
                p.clinic_visits.append(ed + timedelta(days=rnd.choice([2, 9])))
        if i % 8 == 5:  # an admission cancelled by an A11
            p.cancelled_admissions.append((_at(date(2026, 11, 26), 9), f"V{i}X"))
        people.append(p)
    # a merge: MRN SIM900 (ED history, a November stay) is merged into SIM901, who comes back within 30 days
    m = Person(12, "SIM901", "19600707", pcp=True, retired_mrn="SIM900", retired_stays=(0,))
    m.ed_visits = [(_at(date(2026, 8, 3), 4), "ED12-0", False, "SIM900"), (_at(date(2026, 9, 9), 4), "ED12-1", False,
                   "SIM900"), (_at(date(2026, 10, 20), 4), "ED12-2", False, "SIM901")]  # fmt: skip
    first = Stay("V12A", _at(date(2026, 11, 3), 8), _at(date(2026, 11, 7), 12), emergent=True, codes=["I50.9"],
                 accept_h=4.0, visit_done_d=3.0, medrec_done_d=2.0)  # fmt: skip
    second = Stay("V12B", _at(date(2026, 11, 20), 8), _at(date(2026, 11, 24), 12), emergent=True, codes=["N18.4"],
                  accept_h=4.0, visit_done_d=5.0, medrec_done_d=2.0)  # fmt: skip
    m.stays = [first, second]
    m.merged_at = _at(date(2026, 11, 9), 10)
    m.clinic_visits = [_at(date(2026, 11, 10), 10)]  # under the survivor, after the merge: follow-up of V12A
    people.append(m)
    return people


# messages ----------------------------------------------------------------------------------------------
def _ts(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S") + "+0000"


_controls = iter(range(1, 100000))
PD1 = "PD1|||RIVERSIDE FAMILY PRACTICE^^RFP|1234567893^WELBY^MARCUS^^^DR^^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI"


def message(trigger: str, structure: str, sent: datetime, event: datetime, mrn: str, p: Person, *, klass: str = "I",
            visit: str = "", admission_type: str = "", admitted: datetime | None = None,
            discharged: datetime | None = None, disposition: str = "", codes: tuple[str, ...] = (),
            merge_from: str = "") -> bytes:  # fmt: skip
    pv1 = [""] * 46
    pv1[1], pv1[2], pv1[3], pv1[4] = "1", klass, "3E^310^B^RGH", admission_type
    pv1[19] = f"{visit}^^^RGH^VN" if visit else ""
    pv1[36], pv1[39] = disposition, "RGH"
    pv1[44] = _ts(admitted) if admitted else ""
    pv1[45] = _ts(discharged) if discharged else ""
    segments = [
        f"MSH|^~\\&|EPICADT|RGH^2.16.840.1.113883.3.9999.1^ISO|CAREHUB|CAREHUB|{_ts(sent)}||ADT^{trigger}^{structure}|"
        f"SIM{next(_controls):05d}|P|2.5.1|||AL|NE||UNICODE UTF-8",
        f"EVN|{trigger}|{_ts(sent)}||||{_ts(event)}",
        f"PID|1||{mrn}^^^RGH^MR||SIM^PATIENT{p.n}||{p.born}|F|||1 MAIN ST^^SPRINGFIELD^IL^62701^USA^H",
    ]
    if p.pcp:
        segments.append(PD1)
    if merge_from:
        segments.append(f"MRG|{merge_from}^^^RGH^MR")
    else:
        segments.append("PV1|" + "|".join(pv1[1:]))
        segments += [f"DG1|{k + 1}||{c}^condition^I10|||F" for k, c in enumerate(codes)]
    return ("\r".join(segments) + "\r").encode()


def done_at(s: Stay, code: str, days: float) -> datetime:
    """When the PCP completes a Task: ``days`` after the hub created it, and after accepting it."""
    created = s.discharge_at + s.discharge_lag
    accepted = created + timedelta(hours=s.accept_h or 0, minutes=1 if code == "tcm-visit" else 0)
    return max(created + timedelta(days=days, minutes=5), accepted + timedelta(minutes=30))


@dataclass(order=True)
class Action:
    at: datetime
    seq: int
    kind: str = field(compare=False)  # "send" | "task"
    payload: bytes = field(default=b"", compare=False)
    task: tuple[str, str, datetime, str, str] = field(default=("", "", AS_OF, "", ""), compare=False)


def timeline(people: list[Person]) -> list[Action]:
    out: list[Action] = []
    seq = iter(range(1, 100000))

    def send(at: datetime, payload: bytes) -> None:
        out.append(Action(at, next(seq), "send", payload))

    def task(at: datetime, p: Person, stay_index: int, code: str, status: str) -> None:
        stay = p.stays[stay_index]
        out.append(Action(at, next(seq), "task", task=(p.mrn, p.retired_mrn, stay.discharge_at, code, status)))

    for p in people:
        for when, visit, cancelled, mrn in p.ed_visits:
            send(when, message("A04", "ADT_A01", when, when, mrn, p, klass="E", visit=visit, admission_type="E",
                               admitted=when))  # fmt: skip
            if cancelled:
                later = when + timedelta(hours=1)
                send(later, message("A11", "ADT_A09", later, later, mrn, p, klass="E", visit=visit))
        for when in p.clinic_visits:
            send(when, message("A04", "ADT_A01", when, when, p.mrn, p, klass="O", visit=f"C{p.n}-{when:%m%d}",
                               admitted=when))  # fmt: skip
        for when, visit in p.cancelled_admissions:
            send(when, message("A01", "ADT_A01", when, when, p.mrn, p, visit=visit, admitted=when))
            send(when + timedelta(hours=3), message("A11", "ADT_A09", when + timedelta(hours=3),
                                                   when + timedelta(hours=3), p.mrn, p, visit=visit))  # fmt: skip
        for index, s in enumerate(p.stays):
            mrn = p.record_of(index)
            kind = "E" if s.emergent else "R"
            sent = s.admit_at + s.admit_lag
            send(sent, message("A01", "ADT_A01", sent, s.admit_at, mrn, p, visit=s.visit, admission_type=kind,
                               admitted=s.admit_at, codes=tuple(s.codes[:1])))  # fmt: skip
            if s.false_discharge_at is not None:
                f = s.false_discharge_at
                send(f, message("A03", "ADT_A03", f, f, mrn, p, visit=s.visit, admission_type=kind,
                                admitted=s.admit_at, discharged=f, disposition="01", codes=tuple(s.codes)))  # fmt: skip
                c = f + timedelta(hours=2)
                send(c, message("A13", "ADT_A01", c, c, mrn, p, visit=s.visit, admission_type=kind,
                                admitted=s.admit_at))  # fmt: skip
            sent = s.discharge_at + s.discharge_lag
            send(sent, message("A03", "ADT_A03", sent, s.discharge_at, mrn, p, visit=s.visit, admission_type=kind,
                               admitted=s.admit_at, discharged=s.discharge_at, disposition=s.disposition,
                               codes=tuple(s.codes)))  # fmt: skip
            if not p.pcp or s.accept_h is None:
                continue
            created = sent
            accepted = created + timedelta(hours=s.accept_h)
            for code in ("tcm-contact", "tcm-visit", "med-rec"):
                task(accepted + timedelta(minutes=1 if code == "tcm-visit" else 0), p, index, code, "accepted")
            if s.reject_visit:
                task(accepted + timedelta(hours=1), p, index, "tcm-visit", "rejected")
                continue
            task(accepted + timedelta(hours=2), p, index, "tcm-contact", "completed")
            for code, days in (("tcm-visit", s.visit_done_d), ("med-rec", s.medrec_done_d)):
                if days is not None:
                    task(done_at(s, code, days), p, index, code, "completed")
        if p.merged_at is not None:
            at = p.merged_at
            send(at, message("A40", "ADT_A39", at, at, p.mrn, p, merge_from=p.retired_mrn))
    return sorted(out)


# the independent count ------------------------------------------------------------------------------
def _days(a: datetime, b: datetime) -> int:
    return (b.date() - a.date()).days


def _age(born: str, on: date) -> int:
    b = date(int(born[:4]), int(born[4:6]), int(born[6:8]))
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


def _task_times(p: Person, code: str) -> list[datetime]:
    """When the PCP completed the patient's Tasks of ``code`` (the plan's delays from each Task's creation)."""
    out = []
    for s in p.stays:
        if not p.pcp or s.accept_h is None or s.reject_visit:
            continue
        days = s.visit_done_d if code == "tcm-visit" else s.medrec_done_d
        if days is not None:
            out.append(done_at(s, code, days))
    return out


def expected(people: list[Person]) -> dict[str, tuple[int, int]]:
    counts: dict[str, list[int]] = {}

    def count(measure: str, met: bool) -> None:
        pair = counts.setdefault(measure, [0, 0])
        pair[0] += int(met)
        pair[1] += 1

    for p in people:
        visits = _task_times(p, "tcm-visit")
        medrecs = _task_times(p, "med-rec")
        admissions = [s.admit_at for s in p.stays]
        for s in p.stays:
            d = s.discharge_at
            if not NOV_START <= d.date() <= NOV_END or s.disposition in EXCLUDED_DISPOSITIONS:
                continue
            follow = [t for t in visits if 1 <= _days(d, t) <= 30] + [c for c in p.clinic_visits
                                                                      if c > d and 1 <= _days(d, c) <= 30]  # fmt: skip
            week = [t for t in visits if 1 <= _days(d, t) <= 7] + [c for c in p.clinic_visits
                                                                   if c > d and 1 <= _days(d, c) <= 7]  # fmt: skip
            count("follow-up-7d-after-discharge", bool(week))
            count("follow-up-30d-after-discharge", bool(follow))
            if _age(p.born, d.date()) < 18:
                continue
            count("trc-admission-notification", p.pcp and _days(s.admit_at, s.admit_at + s.admit_lag) <= 2)
            count("trc-discharge-information", p.pcp and _days(d, d + s.discharge_lag) <= 2)
            count("trc-discharge-packet", p.pcp and _days(d, d + s.discharge_lag) <= 2)  # the packet goes with it
            count("trc-patient-engagement", bool(follow))
            count("trc-medication-reconciliation", any(0 <= _days(d, t) <= 30 for t in medrecs))
            count("pcr-readmission-30d", any(a > d and _days(d, a) <= 30 for a in admissions))
        for when, _, cancelled, _ in p.ed_visits:
            if cancelled or not NOV_START <= when.date() <= NOV_END:
                continue
            if any(a > when and _days(when, a) <= 1 for a in admissions):
                continue  # admitted: excluded
            seen = [t for t in visits if 0 <= _days(when, t) <= 7] + [c for c in p.clinic_visits
                                                                      if c > when and _days(when, c) <= 7]  # fmt: skip
            count("follow-up-7d-after-ed", bool(seen))
    # service completion: Tasks of November discharges (not of a cancelled one): completed / finished
    for p in people:
        if not p.pcp:
            continue
        for s in p.stays:
            if not NOV_START <= s.discharge_at.date() <= NOV_END:
                continue
            if s.accept_h is None or s.reject_visit:
                done = 0  # silent: all three past due; rejected: the visit declined, the others past due
            else:  # the contact, the visit and the med-rec as planned
                done = 1 + int(s.visit_done_d is not None) + int(s.medrec_done_d is not None)
            for k in range(3):
                count("service-completion", k < done)
    return {k: (v[0], v[1]) for k, v in counts.items()}


def expected_lace(p: Person, index: int, end: datetime) -> int:
    """L + A + C + E by the published table, for the stay's discharge at ``end``."""
    s = p.stays[index]
    record = p.record_of(index)
    merged = p.merged_at is not None and p.merged_at < end
    mine = {record} | ({p.retired_mrn, p.mrn} if merged else set())
    stay_days = _days(s.admit_at, end)
    lpts = 0 if stay_days < 1 else stay_days if stay_days <= 3 else 4 if stay_days <= 6 else 5 if stay_days <= 13 else 7
    codes = {c for k, other in enumerate(p.stays) if p.record_of(k) in mine and other.admit_at <= s.admit_at
             for c in other.codes}  # fmt: skip
    charlson = sum(WEIGHTS[c] for c in codes)
    ed = sum(1 for when, visit, cancelled, mrn in p.ed_visits
             if mrn in mine and not cancelled and s.admit_at - timedelta(days=183) <= when < s.admit_at)  # fmt: skip
    return lpts + (3 if s.emergent else 0) + (charlson if charlson < 4 else 5) + min(ed, 4)


# the run -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plan() -> list[Person]:
    return generate()


@pytest.fixture(scope="module")
async def month(
    broker: str, issuer: Issuer, tmp_path_factory: pytest.TempPathFactory, plan: list[Person]
) -> AsyncIterator[tuple[Hub, dict[str, DemoRecipient]]]:
    config = tmp_path_factory.mktemp("month") / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    (config / "routes.yaml").write_text((config / "routes.yaml").read_text() + EXTRA_RULES)
    recipients = {
        "pcp-riverside": DemoRecipient("pcp-riverside", PCP_SECRET),
        "payer-acme": DemoRecipient("payer-acme", os.environ["CAREHUB_SECRET_PAYER_ACME"]),
    }
    with pytest.MonkeyPatch.context() as env:
        for recipient in recipients.values():
            await recipient.start()
        env.setenv("CAREHUB_ENDPOINT_PCP_RIVERSIDE", recipients["pcp-riverside"].url)
        env.setenv("CAREHUB_ENDPOINT_PAYER_ACME", recipients["payer-acme"].url)
        env.setenv("CAREHUB_SECRET_PCP_RIVERSIDE", PCP_SECRET)
        hub = Hub(hub_settings(config, broker))
        await hub.start()
        try:
            await play(hub, issuer, timeline(plan))
            travel_to(AS_OF)
            yield hub, recipients
        finally:
            set_clock(None)
            await hub.stop()
            for recipient in recipients.values():
                await recipient.stop()


async def play(hub: Hub, issuer: Issuer, actions: list[Action]) -> None:
    client = MLLPClient("127.0.0.1", hub.mllp_port, timeout_s=30)
    accepted = 0
    headers = issuer.headers(TASK_READ, TASK_WRITE, recipient="pcp-riverside")
    base = f"http://127.0.0.1:{hub.http_port}/fhir"
    found: dict[tuple[str, datetime, str], str] = {}
    try:
        async with aiohttp.ClientSession() as http:
            for action in actions:
                travel_to(action.at)
                if action.kind == "send":
                    assert ack_code(await client.send(action.payload)) == "AA"
                    accepted += 1
                    assert await wait_idle(hub.metrics, accepted, 30.0, quiet_s=0.05), "the hub did not go idle"
                    continue
                mrn, retired, discharged, code, status = action.task
                key = (mrn, discharged, code)
                for _ in range(100):  # the Task is journaled before the delivered counter moves; a search may still lag
                    if key in found:
                        break
                    for who in filter(None, (mrn, retired)):
                        async with http.get(f"{base}/Task", params={"patient": f"RGH|{who}"}, headers=headers) as r:
                            bundle = await r.json()
                        for e in bundle.get("entry", []):
                            t = e["resource"]
                            authored = datetime.fromisoformat(t["authoredOn"])
                            for c, kind in KINDS.items():
                                if t["description"] == kind.display:
                                    found.setdefault((mrn, authored, c), t["id"])
                    if key not in found:
                        await asyncio.sleep(0.05)
                task_id = found[key]
                body: dict[str, Any] = {"status": status}
                if status == "rejected":
                    body["statusReason"] = {"text": "the practice has no capacity this month"}
                async with http.patch(f"{base}/Task/{task_id}", json=body, headers=headers) as r:
                    assert r.status == 200, await r.text()
    finally:
        await client.close()


async def _reports(hub: Hub, issuer: Issuer, **params: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{hub.http_port}/fhir/MeasureReport"
    headers = issuer.headers(OPS_READ, PHI_READ)
    async with aiohttp.ClientSession() as http, http.get(url, params=params, headers=headers) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


def _population(report: dict[str, Any], code: str) -> int:
    return next(int(p["count"]) for p in report["group"][0]["population"] if p["code"]["coding"][0]["code"] == code)


async def test_the_months_rates_equal_the_plans(month: tuple[Hub, dict[str, DemoRecipient]], issuer: Issuer,
                                                plan: list[Person]) -> None:  # fmt: skip
    hub, _ = month
    want = expected(plan)
    bundle = await _reports(hub, issuer, period="2026-11-01/2026-11-30")
    got = {}
    for entry in bundle["entry"]:
        report = entry["resource"]
        measure = report["measure"].rsplit("/", 1)[1]
        got[measure] = (_population(report, "numerator"), _population(report, "denominator"))
    assert {k: got[k] for k in want} == want
    assert all(den > 0 for _, den in want.values()) and any(0 < num < den for num, den in want.values())


async def test_turnaround_is_the_recipients_own_delay(month: tuple[Hub, dict[str, DemoRecipient]], issuer: Issuer,
                                                      plan: list[Person]) -> None:  # fmt: skip
    hub, _ = month
    stays = [s for p in plan if p.pcp for s in p.stays if NOV_START <= s.discharge_at.date() <= NOV_END]
    delays = [s.accept_h * 3600 + (60 if code == "tcm-visit" else 0)
              for s in stays if s.accept_h is not None for code in ("tcm-contact", "tcm-visit", "med-rec")]  # fmt: skip
    bundle = await _reports(hub, issuer, period="2026-11-01/2026-11-30", measure="referral-time-to-accept")
    report = bundle["entry"][0]["resource"]
    assert _population(report, "numerator") == len(delays)
    assert abs(report["group"][0]["measureScore"]["value"] - statistics.median(delays)) < 5.0


async def test_every_discharge_carries_the_hand_computed_lace_and_high_risk_reaches_the_payer(
    month: tuple[Hub, dict[str, DemoRecipient]], plan: list[Person]
) -> None:
    _, recipients = month

    def lace_of(bundle: dict[str, Any]) -> tuple[str, int]:
        enc = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
        obs = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"
                   and e["resource"]["code"]["coding"][0]["code"] == "lace-index")  # fmt: skip
        return str(enc["period"]["end"]), int(obs["valueInteger"])

    pcp = {lace_of(r.bundle) for r in recipients["pcp-riverside"].received if r.event_code == "notification-discharge"}
    payer = {lace_of(r.bundle) for r in recipients["payer-acme"].received if r.event_code == "notification-discharge"}
    want = set()
    for p in plan:
        for index, s in enumerate(p.stays):
            for end in filter(None, (s.false_discharge_at, s.discharge_at)):
                want.add((end, expected_lace(p, index, end), p.pcp))
    as_sent = {(datetime.fromisoformat(end), score) for end, score in pcp}
    assert as_sent == {(end, score) for end, score, has_pcp in want if has_pcp}
    assert {(datetime.fromisoformat(end), score) for end, score in payer} == {
        (end, score) for end, score, _ in want if score >= 10
    }
    assert any(score >= 10 for _, score, _ in want) and any(score < 10 for _, score, _ in want)


async def test_subject_lists_and_the_console_page(
    month: tuple[Hub, dict[str, DemoRecipient]], issuer: Issuer, plan: list[Person]
) -> None:
    hub, _ = month
    url = f"http://127.0.0.1:{hub.http_port}"
    query = [("period", "ge2026-11-01"), ("period", "le2026-11-30"), ("measure", "pcr-readmission-30d"),
             ("reportType", "subject-list")]  # fmt: skip

    def back(p: Person, s: Stay) -> bool:
        return any(a.admit_at > s.discharge_at and _days(s.discharge_at, a.admit_at) <= 30 for a in p.stays)

    readmitted = {f"RGH|{p.mrn}" for p in plan for s in p.stays
                  if NOV_START <= s.discharge_at.date() <= NOV_END and _age(p.born, s.discharge_at.date()) >= 18
                  and s.disposition not in EXCLUDED_DISPOSITIONS and back(p, s)}  # fmt: skip
    async with aiohttp.ClientSession() as http:
        phi = issuer.headers(OPS_READ, PHI_READ)
        async with http.get(f"{url}/fhir/MeasureReport", params=query, headers=phi) as r:
            report = (await r.json())["entry"][0]["resource"]
        async with http.get(f"{url}/fhir/MeasureReport", params=query, headers=issuer.headers(OPS_READ)) as r:
            assert r.status == 403, "a subject-list names patients: phi.read too"
        async with http.get(f"{url}/fhir/MeasureReport", params={"period": "2026-11-30/2026-11-01"},
                            headers=issuer.headers(OPS_READ)) as r:  # fmt: skip
            assert r.status == 400 and "before it starts" in (await r.json())["issue"][0]["details"]["text"]
        async with http.get(f"{url}/fhir/MeasureReport") as r:
            assert r.status == 401
        page = f"{url}/console/scorecard?from=2026-11-01&to=2026-11-30&by=facility"
        async with http.get(page, headers=issuer.headers(OPS_READ, PHI_READ)) as r:
            assert r.status == 200
            html = await r.text()
    assert report["type"] == "subject-list" and report["status"] == "complete"
    lists = {c["id"]: c for c in report["contained"]}
    numerator = next(p for p in report["group"][0]["population"] if p["code"]["coding"][0]["code"] == "numerator")
    members = lists[numerator["subjectResults"]["reference"][1:]]["entry"]
    assert {m["item"]["identifier"]["value"] for m in members} == readmitted
    assert 'id="rates-chart"' in html and "pcr-readmission-30d" in html and "facility RGH" in html
    declined = html.split('id="worklist-declined"', 1)[1].split("</table>", 1)[0]
    # a rejected visit Task with no later visit Task for the patient: SIM006 and SIM010; SIM002's later stay has one
    assert "RGH|SIM006" in declined and "RGH|SIM010" in declined and "RGH|SIM002" not in declined
    assert "another provider" in declined
