"""The commands as a user runs them: ``carehub demo --json`` and ``carehub run``."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from carehub.broker import free_port
from carehub.connectors.mllp import MLLPClient, ack_code
from carehub.core.principal import OPS_READ
from carehub.demo_logistics import logistics_lines
from tests.authkit import Issuer, trust_test_issuer
from tests.conftest import CONFIG, FEED

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CAREHUB = str(Path(sys.executable).parent / "carehub")


def test_help_explains_every_subcommand() -> None:
    out = subprocess.run([CAREHUB, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("run", "demo"):
        assert command in out
        sub = subprocess.run([CAREHUB, command, "--help"], capture_output=True, text=True, check=True).stdout
        assert "usage: carehub " + command in sub


def test_demo_json_reports_every_message_acked_and_all_four_recipient_kinds_reached() -> None:
    proc = subprocess.run([CAREHUB, "demo", "--json"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    feed = sorted(FEED.glob("*.hl7"))
    assert report["sent"] == len(feed)
    assert report["acked"] == {"AA": len(feed), "AE": 0, "AR": 0}
    assert report["normalized"] == len(feed)
    # routed: 25 notifications and tasks, 4 transition-of-care packets (Rivera's and Okafor's inpatient
    # discharges, to the PCP and the payer), the 2 CarePlan revocations of Okafor's A13 and Rivera's 2
    # logistics orders (heart failure, I50.22) to the
    # hub's logistics desk. Delivered besides: the 3 offers to vendors and the order steps told to the PCP.
    assert report["routed"] == 33 and report["failed"] == 0
    # PCP: 8 ADT notifications (the A08 goes nowhere; the Part 2 admit under the patient's consent)
    # + TCM contact and visit tasks for 2 discharges + 2 packets; payer: 5 inpatient admits/discharges (the
    # Part 2 admit is suppressed: its consent names the PCP only) + 2 packets; pharmacy: 1 med-rec (Okafor
    # is rostered to it); CBO: 1 food-insecurity referral (Z59.41 on Okafor's discharge). Then the A13
    # cancels Okafor's discharge: the PCP and the payer get the cancel notification, and the PCP (2), the
    # pharmacy and the CBO get their Tasks back as status=cancelled.
    orders = {o["service"]: o for o in report["logistics"]}
    steps = sum(len(o["steps"]) for o in report["logistics"])  # every step of an order is told to the PCP
    assert report["per_recipient"] == {
        "pcp-riverside": 18 + steps, "payer-acme": 9, "pharmacy-mainst": 2, "cbo-foodbank": 2,
        "nemt-metro": 1, "nemt-prairie": 1, "dme-lincoln": 1,
    }  # fmt: skip
    # the cascade: the first transport vendor (in network, rank 1) declines, the second takes the ride;
    # the oxygen, due at discharge, is delivered
    ride = [(step, vendor) for step, vendor, _ in orders["nemt"]["steps"]]
    assert ride[:4] == [("placed", ""), ("offered", "nemt-metro"), ("declined", "nemt-metro"),
                        ("offered", "nemt-prairie")]  # fmt: skip
    assert orders["nemt"]["state"] == "scheduled" and orders["nemt"]["vendor"] == "nemt-prairie", "ride on day 13"
    assert orders["dme"]["state"] == "completed" and orders["dme"]["vendor"] == "dme-lincoln"
    shown = "\n".join(logistics_lines(report["logistics"]))  # the summary's lines (carehub.demo.render)
    assert "declined                 nemt-metro (no wheelchair van free that afternoon)" in shown
    # Both inpatient discharges send a transition-of-care packet to the PCP and the payer (docs/packet.md);
    # the A13 revokes Okafor's CarePlan at both.
    assert report["packets"] == {"pcp-riverside": 2, "payer-acme": 2} and report["careplans_revoked"] == 2
    sections = report["packet_sections"]
    assert sections["Encounter and responsible practitioner"] == "2"
    assert sections["Plan of care"] == "5", "the CarePlan, 2 Tasks and Rivera's 2 logistics orders"
    assert sections["Medications"] == "unavailable", "the demo configures no FHIR source to complete packets from"
    assert report["cancels"] == ["10-a13-cancel-discharge-okafor.hl7"]
    assert report["cancel_notices"] == 2 and report["tasks_cancelled"] == 4
    assert sum(report["per_recipient"].values()) + len(orders) == report["delivered"]
    assert report["signatures_verified"] == sum(report["per_recipient"].values()), "every webhook is signed"
    assert report["consents"] == ["harper-rrc-2026"] and report["disclosed_with_consent"] == 1
    assert [(s["recipient"], s["patient"]) for s in report["suppressed"]] == [("payer-acme", "RRC|RRC-20931")]
    audit = subprocess.run(
        [CAREHUB, "audit", "disclosures", "--patient", "RRC|RRC-20931", "--database-url", report["journal"]],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # the PCP's disclosure is decided when planned and again just before it left; the payer's suppressed
    assert "3 decision(s): 1 disclosed, 1 suppressed" in audit
    journal_file = Path(report["journal"].removeprefix("sqlite:///"))
    assert stat.S_IMODE(journal_file.stat().st_mode) == 0o600, "the journal holds PHI: owner-only"
    # the run ends with a scorecard of its own traffic (replayed on the feed's timeline): Rivera's inpatient
    # stay is the one discharge (Okafor's was cancelled by the A13); its PCP got both notifications in time
    closing = {row["id"]: (row["numerator"], row["denominator"]) for row in report["scorecard"]}
    assert report["scorecard_period"] == "2026-11-01/2026-11-08"
    assert closing["trc-admission-notification"] == closing["trc-discharge-information"] == (1, 1)
    assert closing["follow-up-7d-after-ed"] == (0, 0), "Rivera's ED visit led to an admission: excluded"
    card = subprocess.run(
        [CAREHUB, "scorecard", "--json", "--from", "2026-11-01", "--to", "2026-11-30", "--database-url",
         report["journal"], "--config-dir", str(CONFIG)], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    measures = json.loads(card)["measures"]
    assert len(measures) == 14 and all({"numerator", "denominator", "rate"} <= set(m) for m in measures)
    assert {m["id"]: m["rate"] for m in measures}["trc-discharge-information"] == 1.0


def test_demo_counts_unreadable_feed_files(tmp_path: Path) -> None:
    (tmp_path / "a.hl7").write_bytes((FEED / "02-a01-admit-rivera.hl7").read_bytes())
    (tmp_path / "b.hl7").write_bytes(b"this is not HL7 at all")
    (tmp_path / "c.hl7").write_bytes(b"")
    proc = subprocess.run(
        [CAREHUB, "demo", "--json", "--feed", str(tmp_path)], capture_output=True, text=True, timeout=180
    )
    report = json.loads(proc.stdout)
    assert report["unreadable"] == ["b.hl7", "c.hl7"]
    assert report["acked"]["AA"] == 1


async def test_run_serves_mllp_and_http_and_logs_no_phi(broker: str, tmp_path: Path, issuer: Issuer) -> None:
    mllp_port, http_port = free_port(), free_port()
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config, ignore=shutil.ignore_patterns("schemas"))
    trust_test_issuer(config)
    env = {**os.environ, "CAREHUB_KAFKA_BOOTSTRAP": broker, "CAREHUB_TOPIC_PREFIX": f"run{os.getpid()}."}
    proc = await asyncio.create_subprocess_exec(
        CAREHUB,
        "run",
        "--config-dir",
        str(config),
        "--mllp-port",
        str(mllp_port),
        "--http-port",
        str(http_port),
        "--log-level",
        "DEBUG",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert b"carehub running" in line, line
        client = MLLPClient("127.0.0.1", mllp_port)
        ack = await client.send((FEED / "02-a01-admit-rivera.hl7").read_bytes())
        await client.close()
        assert ack_code(ack) == "AA"
        health = await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{http_port}/health")
        assert json.load(health) == {"status": "ok"}
        await asyncio.sleep(1.0)
        metrics_url = f"http://127.0.0.1:{http_port}/metrics"
        with pytest.raises(urllib.error.HTTPError) as refused:
            await asyncio.to_thread(urllib.request.urlopen, metrics_url)
        assert refused.value.code == 401
        request = urllib.request.Request(metrics_url, headers=issuer.headers(OPS_READ))
        metrics = (await asyncio.to_thread(urllib.request.urlopen, request)).read()
        assert b"carehub_normalized" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    logs = err.decode()
    assert "RGH0002" in logs, "control ids are logged"
    for phi in ("RIVERA", "MARIA", "MRN100234", "19580412", "ELM ST", "555-0101"):
        assert phi not in logs, f"PHI {phi!r} leaked into the logs"


def test_demo_serve_prints_a_console_url_and_a_token_that_signs_in() -> None:
    """``carehub demo --serve``: the printed token opens the printed console, which shows the feed."""
    proc = subprocess.Popen([CAREHUB, "demo", "--serve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = token = ""
        for line in proc.stdout:
            if line.startswith("operations console: "):
                url = line.split()[2]
            elif "sign in with this token" in line:
                token = line.rsplit(" ", 1)[1].strip()
                break
        assert url.startswith("http://127.0.0.1:") and url.endswith("/console") and token, (url, token)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: object, **kwargs: object) -> None:
                return None

        opener = urllib.request.build_opener(NoRedirect)
        form = urllib.parse.urlencode({"token": token}).encode()
        with pytest.raises(urllib.error.HTTPError) as answer:
            opener.open(urllib.request.Request(f"{url}/signin", data=form), timeout=10)
        assert answer.value.code == 303
        cookie = answer.value.headers["Set-Cookie"].split(";")[0]
        deadline = time.monotonic() + 60  # the message journal is its own consumer group: it may lag the demo
        while True:
            request = urllib.request.Request(f"{url}/messages", headers={"Cookie": cookie})
            page = urllib.request.urlopen(request, timeout=10)
            html = page.read().decode()
            if "RGH0002" in html or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert page.status == 200 and "RGH0002" in html and "demo-analyst (PHI)" in html
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)  # Ctrl-C stops the hub and the demo recipients
