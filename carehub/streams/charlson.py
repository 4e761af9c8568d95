"""Charlson comorbidity from ICD-10 codes (pure): Quan et al. 2005 coding, Charlson 1987 weights.

Codes are matched as prefixes or ranges over their first characters (``I21``, ``I42.5-I42.9``,
``C00-C26``), dots ignored, so ICD-10-CM codes (``E11.65``) fall into their category. Where a
milder and a severer form of one condition are both present only the severer counts (diabetes,
liver disease, cancer), as the index defines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from carehub.streams.routing.match import code_matches


@dataclass(frozen=True, slots=True)
class Comorbidity:
    name: str
    weight: int
    codes: tuple[str, ...]
    #: A milder form this one replaces when both are present.
    replaces: str = ""


CONDITIONS: tuple[Comorbidity, ...] = (
    Comorbidity("myocardial infarction", 1, ("I21", "I22", "I25.2")),
    Comorbidity(
        "congestive heart failure",
        1,
        ("I09.9", "I11.0", "I13.0", "I13.2", "I25.5", "I42.0", "I42.5-I42.9", "I43", "I50", "P29.0"),
    ),
    Comorbidity(
        "peripheral vascular disease",
        1,
        (
            "I70",
            "I71",
            "I73.1",
            "I73.8",
            "I73.9",
            "I77.1",
            "I79.0",
            "I79.2",
            "K55.1",
            "K55.8",
            "K55.9",
            "Z95.8",
            "Z95.9",
        ),
    ),  # fmt: skip
    Comorbidity("cerebrovascular disease", 1, ("G45", "G46", "H34.0", "I60-I69")),
    Comorbidity("dementia", 1, ("F00-F03", "F05.1", "G30", "G31.1")),
    Comorbidity("chronic pulmonary disease", 1, ("I27.8", "I27.9", "J40-J47", "J60-J67", "J68.4", "J70.1", "J70.3")),
    Comorbidity("rheumatic disease", 1, ("M05", "M06", "M31.5", "M32-M34", "M35.1", "M35.3", "M36.0")),
    Comorbidity("peptic ulcer disease", 1, ("K25-K28",)),
    Comorbidity(
        "mild liver disease",
        1,
        (
            "B18",
            "K70.0-K70.3",
            "K70.9",
            "K71.3-K71.5",
            "K71.7",
            "K73",
            "K74",
            "K76.0",
            "K76.2-K76.4",
            "K76.8",
            "K76.9",
            "Z94.4",
        ),
    ),  # fmt: skip
    Comorbidity(
        "diabetes without chronic complication",
        1,
        (
            "E08.9",
            "E09.9",
            "E10.0",
            "E10.1",
            "E10.6",
            "E10.8",
            "E10.9",
            "E11.0",
            "E11.1",
            "E11.6",
            "E11.8",
            "E11.9",
            "E13.0",
            "E13.1",
            "E13.6",
            "E13.8",
            "E13.9",
        ),
    ),  # fmt: skip
    Comorbidity(
        "diabetes with chronic complication",
        2,
        ("E08.2-E08.5", "E10.2-E10.5", "E10.7", "E11.2-E11.5", "E11.7", "E13.2-E13.5", "E13.7"),
        replaces="diabetes without chronic complication",
    ),
    Comorbidity(
        "hemiplegia or paraplegia", 2, ("G04.1", "G11.4", "G80.1", "G80.2", "G81", "G82", "G83.0-G83.4", "G83.9")
    ),
    Comorbidity(
        "renal disease",
        2,
        ("I12.0", "I13.1", "N03.2-N03.7", "N05.2-N05.7", "N18", "N19", "N25.0", "Z49.0-Z49.2", "Z94.0", "Z99.2"),
    ),
    Comorbidity(
        "malignancy",
        2,
        ("C00-C26", "C30-C34", "C37-C41", "C43", "C45-C58", "C60-C76", "C81-C85", "C88", "C90-C97"),
    ),
    Comorbidity(
        "moderate or severe liver disease",
        3,
        ("I85.0", "I85.9", "I86.4", "I98.2", "K70.4", "K71.1", "K72.1", "K72.9", "K76.5", "K76.6", "K76.7"),
        replaces="mild liver disease",
    ),
    Comorbidity("metastatic solid tumour", 6, ("C77-C80",), replaces="malignancy"),
    Comorbidity("HIV/AIDS", 6, ("B20-B22", "B24")),
)


def conditions(codes: Iterable[str]) -> list[Comorbidity]:
    """The Charlson conditions the codes show, each once, the milder form dropped when the severer is there."""
    seen = [c for c in CONDITIONS if any(code_matches(p, code) for code in codes if code for p in c.codes)]
    replaced = {c.replaces for c in seen if c.replaces}
    return [c for c in seen if c.name not in replaced]


def charlson(codes: Iterable[str]) -> int:
    """The Charlson comorbidity index of the codes (sum of the weights)."""
    return sum(c.weight for c in conditions(codes))
