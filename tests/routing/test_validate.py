"""``carehub routes validate`` and ``explain``: file:line errors for broken configs, offline explanations."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CONFIG, FEED, REPO

pytestmark = pytest.mark.slow  # a carehub process per test
CAREHUB = str(Path(sys.executable).parent / "carehub")


def _routes(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CAREHUB, "routes", *args], capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target, ignore=shutil.ignore_patterns("schemas"))
    return target


def test_shipped_config_validates() -> None:
    proc = _routes("validate", str(CONFIG))
    assert proc.returncode == 0, proc.stderr
    assert "12 rules, 7 recipients, 2 rosters (5 members)" in proc.stdout


def test_every_problem_is_reported_with_file_and_line(broken: Path) -> None:
    routes = broken / "routes.yaml"
    text = routes.read_text().replace(
        "notify: attributed:payer\n  - id: readmission", "notify: payer-nobody\n  - id: readmission"
    )
    routes.write_text(text)
    roster = broken / "rosters" / "attribution.csv"
    roster.write_text(roster.read_text() + "RGH,MRN9,pcp-nobody,,,\nRGH,,pcp-riverside,,,\nRGH,MRN8,payer-acme,,,\n")
    proc = _routes("validate", str(broken))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    line = text.splitlines().index("      - notify: payer-nobody") + 1
    assert f"{routes}:{line}: rule 'inpatient-to-payer' names recipient 'payer-nobody'" in lines[0]
    assert f"{roster}:4: pcp: recipient 'pcp-nobody' is not in the directory" in proc.stderr
    assert f"{roster}:5: assigning_authority and patient_id are required" in proc.stderr
    assert f"{roster}:6: pcp: recipient 'payer-acme' is a payer" in proc.stderr
    assert "4 problem(s)" in lines[-1]


def test_schema_errors_name_the_line(broken: Path) -> None:
    recipients = broken / "recipients.yaml"
    text = recipients.read_text().replace("    channel: webhook", "    channel: carrier-pigeon", 1)
    recipients.write_text(text)
    group = broken / "rosters" / "acme-members.json"
    group.write_text(group.read_text().replace('"value": "payer-acme"', '"value": "payer-gone"'))
    proc = _routes("validate", str(broken))
    line = text.splitlines().index("    channel: carrier-pigeon") + 1
    assert proc.returncode == 1
    assert f"{recipients}:{line}: recipients/0/channel: 'carrier-pigeon' is not one of" in proc.stderr


def test_unknown_recipient_in_a_group_roster(broken: Path) -> None:
    group = broken / "rosters" / "acme-members.json"
    group.write_text(group.read_text().replace('"value": "payer-acme"', '"value": "payer-gone"'))
    proc = _routes("validate", str(broken))
    assert proc.returncode == 1
    assert f"{group}:1: managingEntity: recipient 'payer-gone' is not in the directory" in proc.stderr


def test_explain_an_hl7_file_and_a_care_event_json(tmp_path: Path) -> None:
    proc = _routes("explain", str(FEED / "07-a03-discharge-okafor.hl7"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "task:sdoh-referral:food-insecurity -> cbo-foodbank (cbo, webhook) via service food-insecurity" in out
    assert "tcm-after-readmission: flag readmission not set" in out
    assert "OKAFOR" not in out and "MRN100871" not in out, "explain names ids and codes, not patients"
    converted = subprocess.run(
        [CAREHUB, "convert", "--event", str(FEED / "04-a03-discharge-rivera.hl7")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (tmp_path / "event.json").write_text(converted)
    proc = _routes("explain", str(tmp_path / "event.json"), "--json", "--flag", "readmission")
    doc = json.loads(proc.stdout)
    assert doc["flags"] == ["readmission"]
    assert {p["rule"] for p in doc["planned"]} == {
        "adt-to-pcp",
        "inpatient-to-payer",
        "toc-packet",
        "tcm-after-readmission",
        "heart-failure-logistics",  # Rivera's discharge is a heart-failure discharge (I50.22)
    }
    assert doc["unresolved"][0]["target"] == "attributed:pharmacy"


def test_explain_refuses_a_broken_config(broken: Path) -> None:
    (broken / "routes.yaml").write_text("version: 1\nrules: [\n")
    proc = _routes("explain", str(FEED / "07-a03-discharge-okafor.hl7"), "--config-dir", str(broken))
    assert proc.returncode == 1 and "routes.yaml:" in proc.stderr


def test_every_file_run_loads_is_checked_and_every_problem_reported_at_once(broken: Path) -> None:
    """An inverted ICD range, endpoints that are not URLs, carehub.yaml, part2.yaml and subscriptions.yaml
    errors: all in one run, each with file and line; ``run`` refuses the same directory."""
    routes = broken / "routes.yaml"
    routes.write_text(routes.read_text().replace("diagnosis: [Z55-Z65]", "diagnosis: [Z65-Z55]"))
    recipients = broken / "recipients.yaml"
    text = recipients.read_text()
    text = text.replace("${CAREHUB_ENDPOINT_PCP_RIVERSIDE:-http://127.0.0.1:9101/fhir/$process-message}", "not a url")
    text = text.replace(
        "${CAREHUB_ENDPOINT_PAYER_ACME:-http://127.0.0.1:9102/fhir/$process-message}", "htp//127.0.0.1:9105"
    )
    recipients.write_text(text)
    settings = broken / "carehub.yaml"
    settings.write_text(
        settings.read_text().replace("partitions: 4", "partitions: 0").replace("port: 2575", "port: 99999")
    )
    part2 = broken / "part2.yaml"
    part2.write_text(part2.read_text().replace("programs:", "programmes:", 1))
    subscriptions = broken / "subscriptions.yaml"
    subscriptions.write_text(subscriptions.read_text().replace("heartbeat_period_s: 300", "heartbeat_period_s: soon"))

    proc = _routes("validate", str(broken))
    assert proc.returncode == 1
    err = proc.stderr

    def line(path: Path, needle: str) -> int:
        return next(n for n, text in enumerate(path.read_text().splitlines(), 1) if needle in text)

    assert f"{routes}:{line(routes, 'Z65-Z55')}: rule 'sdoh-referral': diagnosis range 'Z65-Z55' is inverted" in err
    assert (
        f"{recipients}:{line(recipients, 'not a url')}: recipient 'pcp-riverside': endpoint not an http(s) URL" in err
    )
    assert f"{recipients}:{line(recipients, 'htp//')}: recipient 'payer-acme': endpoint not an http(s) URL" in err
    assert f"{settings}:{line(settings, 'partitions: 0')}: kafka/partitions: 0 is less than the minimum" in err
    assert f"{settings}:{line(settings, 'port: 99999')}: mllp/port: 99999 is greater than the maximum" in err
    assert f"{part2}:{line(part2, 'programmes:')}: (top level): 'programs' is a required property" in err
    assert f"{subscriptions}:{line(subscriptions, 'soon')}: sources/0/subscriptions/0/heartbeat_period_s" in err
    assert err.splitlines()[-1] == f"9 problem(s) in {broken}", err

    run = subprocess.run(
        [CAREHUB, "run", "--config-dir", str(broken), "--http-port", "0", "--mllp-port", "0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0 and "carehub.yaml" in run.stderr, "run refuses what validate reports"


def test_schema_errors_say_what_is_expected_and_suggest_the_closest_id(broken: Path) -> None:
    """Every problem in one run, in words: no raw regex or type, a "did you mean" for misspelt ids and kinds."""
    routes = broken / "routes.yaml"
    text = routes.read_text()
    text = text.replace("code: med-rec, due: {days: 7}", "code: med-rec, due: 7d")
    text = text.replace("diagnosis: [Z55-Z65]", "diagnosis: [z55-z65]")
    text = text.replace(
        "      kind: [discharge]\n    actions:\n      - task: {to: attributed:pharmacy",
        "      kind: [discharg]\n    actions:\n      - task: {to: attributed:pharmacy",
    )
    routes.write_text(text)
    recipients = broken / "recipients.yaml"
    recipients.write_text(recipients.read_text().replace("    kind: pcp", "    kind: specialst", 1))

    proc = _routes("validate", str(broken))
    assert proc.returncode == 1
    err = proc.stderr
    assert "due: use {days: 7} or {business_days: 2} (got '7d')" in err, err
    assert "diagnosis/0: an ICD-10 code or range like I50 or I50-I52 (got 'z55-z65')" in err, err
    assert "does not match" not in err and "is not of type" not in err, "no raw regexes or types"
    assert "'discharg' is not one of" in err and "did you mean 'discharge'?" in err, err
    assert "kind: 'specialst' is not one of" in err and "did you mean 'specialist'?" in err, err


def test_an_unknown_recipient_id_gets_the_closest_one(broken: Path) -> None:
    routes = broken / "routes.yaml"
    text = routes.read_text().replace(
        "notify: attributed:payer\n  - id: readmission", "notify: payer-acm\n  - id: readmission"
    )
    routes.write_text(text)
    proc = _routes("validate", str(broken))
    assert proc.returncode == 1
    assert (
        "names recipient 'payer-acm', which recipients.yaml does not define; did you mean 'payer-acme'?" in proc.stderr
    )


def test_a_specialist_recipient_is_a_recipient_kind(broken: Path) -> None:
    recipients = broken / "recipients.yaml"
    specialist = (
        "  - id: cardiology-north\n    name: North Cardiology\n    kind: specialist\n    channel: fhir-rest\n"
        "    endpoint: https://cardiology.example.org/fhir\n"
    )
    recipients.write_text(
        recipients.read_text().replace("  - id: payer-acme\n", specialist + "  - id: payer-acme\n", 1)
    )
    proc = _routes("validate", str(broken))
    assert proc.returncode == 0, proc.stderr
    assert "8 recipients" in proc.stdout


def test_routes_apply_installs_only_a_valid_staged_config(tmp_path: Path) -> None:
    live, staging = tmp_path / "live", tmp_path / "staging"
    for target in (live, staging):
        shutil.copytree(CONFIG, target, ignore=shutil.ignore_patterns("schemas"))
    before = (live / "routes.yaml").read_text()
    routes = staging / "routes.yaml"
    routes.write_text(routes.read_text().replace("code: med-rec, due: {days: 7}", "code: med-rec, due: 7d"))
    refused = _routes("apply", str(staging), "--config-dir", str(live))
    assert refused.returncode == 1 and "nothing installed" in refused.stderr
    assert "due: use {days: 7}" in refused.stderr
    assert (live / "routes.yaml").read_text() == before, "a staged config with problems changes nothing"

    routes.write_text(routes.read_text().replace("due: 7d", "due: {days: 5}"))
    gone = sorted((staging / "rosters").iterdir())[0]
    gone.unlink()
    installed = _routes("apply", str(staging), "--config-dir", str(live))
    assert installed.returncode == 0, installed.stderr
    assert (live / "routes.yaml").read_text() == routes.read_text()
    assert not (live / "rosters" / gone.name).exists(), "a roster dropped from staging is removed"
    assert not list(live.rglob("*.apply-tmp"))
    version = installed.stdout.split()[2]
    check = _routes("validate", str(live))
    assert check.returncode == 0 and f"routing map {version}" in check.stdout, check.stderr


def test_vendor_and_order_problems_are_reported_together_with_file_and_line(broken: Path) -> None:
    """Issue 19: a vendor's capabilities, area and hours, and the orders that need them, are validated."""
    recipients = broken / "recipients.yaml"
    text = recipients.read_text()
    text = text.replace("capabilities: [oxygen, hospital-bed, walker]", "capabilities: [oxygn, hospital-bed]")
    text = text.replace('hours: {from: "05:00", to: "23:00"}', 'hours: {from: "23:00", to: "05:00"}')
    food = "    services: [food-insecurity]\n"
    text = text.replace(food, food + "    capacity_per_day: 3\n")
    recipients.write_text(text)
    routes = broken / "routes.yaml"
    routes.write_text(
        routes.read_text().replace("when: {at: follow-up, days: -1}", "when: {at: follow-up, task: tcm-vist}")
    )
    proc = _routes("validate", str(broken))
    assert proc.returncode == 1
    lines = text.splitlines()
    route_lines = routes.read_text().splitlines()

    def line(needle: str, source: list[str]) -> int:
        return next(n for n, t in enumerate(source, 1) if needle in t)

    expected = [
        f"recipients.yaml:{line('to: ' + chr(34) + '05:00', lines)}: recipient 'nemt-prairie': hours from 23:00",
        f"recipients.yaml:{line('oxygn', lines)}: recipient 'dme-lincoln': 'oxygn' is not a dme capability",
        f"recipients.yaml:{line('capacity_per_day: 3', lines)}: recipient 'cbo-foodbank': capacity_per_day is for",
        f"routes.yaml:{line('capability: oxygen', route_lines)}: rule 'heart-failure-logistics': no dme vendor",
        f"routes.yaml:{line('tcm-vist', route_lines)}: rule 'heart-failure-logistics': the order is timed from task"
        " 'tcm-vist', which no rule plans; did you mean 'tcm-visit'?",
    ]
    for want in expected:
        assert want in proc.stderr, (want, proc.stderr)
    recipients.write_text(text.replace('counties: ["17167", "17129"]}', 'counties: ["Sangamon"]}'))
    proc = _routes("validate", str(broken))
    at = line('counties: ["17167", "17129"]', lines)
    assert f"recipients.yaml:{at}: recipients/5/area/counties/0" in proc.stderr and "got 'Sangamon'" in proc.stderr
