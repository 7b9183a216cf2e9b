"""Few-shot evaluation of checkpoints on the fixed held-out episodes (docs/formats.md section 6).

Modules: features (images in, L2-normalised features out, once per image), logreg (batched
multinomial logistic regression, the published PT protocol), proto (nearest class mean),
calibration (temperature fitted on support sets only), metrics (per-episode accuracy/loss,
t-intervals), evaluate (one checkpoint, one episode file). MAML checkpoints are adapted by
divcoeff.maml.evaluate.
"""
from divcoeff.fewshot.evaluate import EvalResult, evaluate_checkpoint, result_document, write_results
from divcoeff.fewshot.features import InputMismatchError, input_spec
from divcoeff.fewshot.logreg import fit_logreg
from divcoeff.fewshot.metrics import episode_metrics, summarize

__all__ = ["EvalResult", "InputMismatchError", "episode_metrics",
           "evaluate_checkpoint", "fit_logreg", "input_spec", "result_document", "summarize",
           "write_results"]
