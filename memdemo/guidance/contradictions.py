"""Options that a method's other options switch off: named with the reason and the fix, on every surface (page, API
and CLI), never silently dropped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# AMG options that only one term reads, with that term and its name.
TERM_OPTIONS = {
    "c1": ("spe", "G_spe"),
    "c2": ("dup", "G_dup"),
    "c3": ("sim", "G_sim"),
    "sim_through_unet": ("sim", "G_sim"),
}
# λ schedules that never read the λ option (the constant one reads it as λ, the calibrated one as its τ).
FIXED_SCHEDULES = ("official", "emojimem-pixel")


def ignored_options(method: str, params: Mapping[str, Any]) -> list[str]:
    """A note for each option of `method`'s checked `params` that its other options switch off, with the fix."""
    notes = []
    if method == "amg":
        for name, (term, label) in TERM_OPTIONS.items():
            if params[name] is not None and params[name] is not False and term not in params["terms"]:
                notes.append(
                    f"{name} is ignored: {label} is not among the AMG terms; add {term} to the terms, or leave "
                    f"{name} blank."
                )
        if params["threshold"] is not None and params["schedule"] in FIXED_SCHEDULES:
            notes.append(
                f"λ is ignored: the {params['schedule']} λ_t schedule does not read it; choose the constant schedule "
                "or leave λ blank."
            )
    if method.startswith("og-") and params["og_scale"] == 0:
        notes.append(
            f"Opposite guidance scale λ = 0 is no guidance before the switch, the same run as {method[3:]}; raise λ "
            "(blank: λ = s0) or choose that method."
        )
    return notes
