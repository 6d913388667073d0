"""`python -m memdemo evaluate`: copy rates of baseline and mitigated samples over prompt sets, seeds and methods."""

from memdemo.evaluation.methods import METHOD_NAMES, EvaluationError, make_method_policy
from memdemo.evaluation.prompts import PROMPT_SETS, Prompt, load_prompts
from memdemo.evaluation.runner import SAMPLES_FILE, run_evaluation
from memdemo.evaluation.summary import summarize, write_summary

__all__ = [
    "METHOD_NAMES",
    "PROMPT_SETS",
    "SAMPLES_FILE",
    "EvaluationError",
    "Prompt",
    "load_prompts",
    "make_method_policy",
    "run_evaluation",
    "summarize",
    "write_summary",
]
