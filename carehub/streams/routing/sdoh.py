"""ICD-10 social-determinant codes (ICD-10 Z55-Z65) -> Gravity SDOH categories (data).

Categories are codes of the Gravity SDOH Clinical Care temporary code system
(standards.md §3); a CBO's ``services`` in the directory use the same codes.
The longest matching prefix wins.
"""

from __future__ import annotations

from carehub.streams.routing.match import code_matches

SDOH_RANGE = "Z55-Z65"
SDT = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
UNSPECIFIED = "sdoh-category-unspecified"

#: ICD-10-CM prefix (dots removed) -> (category code, display)
CATEGORIES: dict[str, tuple[str, str]] = {
    "Z55": ("educational-attainment", "Educational Attainment"),
    "Z56": ("employment-status", "Employment Status"),
    "Z590": ("homelessness", "Homelessness"),
    "Z591": ("inadequate-housing", "Inadequate Housing"),
    "Z5912": ("utility-insecurity", "Utility Insecurity"),
    "Z594": ("food-insecurity", "Food Insecurity"),
    "Z595": ("financial-insecurity", "Financial Insecurity"),
    "Z596": ("financial-insecurity", "Financial Insecurity"),
    "Z597": ("financial-insecurity", "Financial Insecurity"),
    "Z5981": ("housing-instability", "Housing Instability"),
    "Z5982": ("transportation-insecurity", "Transportation Insecurity"),
    "Z5986": ("financial-insecurity", "Financial Insecurity"),
    "Z5987": ("material-hardship", "Material Hardship"),
    "Z60": ("social-connection", "Social Connection"),
    "Z651": ("incarceration-status", "Incarceration Status"),
}


def is_sdoh(code: str) -> bool:
    return code_matches(SDOH_RANGE, code)


def category_of(code: str) -> tuple[str, str]:
    """The Gravity category of one SDOH diagnosis code (unspecified when unmapped)."""
    plain = code.upper().replace(".", "")
    best = max((p for p in CATEGORIES if plain.startswith(p)), key=len, default=None)
    return CATEGORIES[best] if best else (UNSPECIFIED, "SDOH Category Unspecified")


def categories(codes: list[str]) -> dict[str, list[str]]:
    """Category -> the SDOH codes that point to it, in first-seen order."""
    out: dict[str, list[str]] = {}
    for code in codes:
        if is_sdoh(code):
            out.setdefault(category_of(code)[0], []).append(code)
    return out


def display_of(category: str) -> str:
    """The display text of a category code."""
    return next((d for c, d in CATEGORIES.values() if c == category), "SDOH Category Unspecified")
