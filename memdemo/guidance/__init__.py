"""Guidance methods, one registry: CFG, AMG and the transition-point family. A new method is one module with its
MethodSpec and one `register` line here."""

from __future__ import annotations

from memdemo.guidance.amg import AMG, AMG_VARIANTS
from memdemo.guidance.base import GuidanceError, Guided, Policy, StepContext
from memdemo.guidance.baseline import BASELINE, CFGPolicy
from memdemo.guidance.registry import (
    METHODS,
    VARIANTS,
    MethodSpec,
    Param,
    ParameterError,
    Variant,
    build_policy,
    method_spec,
    register,
    variant,
    variant_policy,
)
from memdemo.guidance.similarity import SimilarityMonitor
from memdemo.guidance.transition import DTP, OG_DTP, OG_STP, STP

register(BASELINE)
register(AMG, *AMG_VARIANTS)
register(STP)
register(DTP)
register(OG_STP)
register(OG_DTP)

__all__ = [
    "METHODS",
    "VARIANTS",
    "CFGPolicy",
    "GuidanceError",
    "Guided",
    "MethodSpec",
    "Param",
    "ParameterError",
    "Policy",
    "SimilarityMonitor",
    "StepContext",
    "Variant",
    "build_policy",
    "method_spec",
    "register",
    "variant",
    "variant_policy",
]
