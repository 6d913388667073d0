"""`python -m memdemo evaluate`: copy rates of baseline and mitigated samples over prompt sets, seeds and methods."""

from memdemo.evaluation.methods import EvaluationError, make_method_policy, method_names
from memdemo.evaluation.prompts import PROMPT_SETS, Prompt, load_prompts
from memdemo.evaluation.runner import SAMPLES_FILE, run_evaluation
from memdemo.evaluation.summary import summarize, write_summary

__all__ = [
    "PROMPT_SETS",
    "SAMPLES_FILE",
    "EvaluationError",
    "Prompt",
    "load_prompts",
    "make_method_policy",
    "method_names",
    "run_evaluation",
    "summarize",
    "write_summary",
]
