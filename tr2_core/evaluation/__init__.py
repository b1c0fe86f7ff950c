"""Action Genome scene-graph evaluation (Recall@K, mR@K, breakdowns).

Modules (NumPy only; nothing here imports torch):

* :mod:`~tr2_core.evaluation.predictions` - the predictions ``.npz`` contract:
  :func:`load_predictions`, :func:`save_predictions`, :func:`validate_predictions`;
* :mod:`~tr2_core.evaluation.recall` - the fast, vectorised evaluator:
  :func:`evaluate` (metrics dict), :func:`evaluate_detailed` (per-triplet ranks);
* :mod:`~tr2_core.evaluation.breakdown` - per-family and time-variant
  breakdowns, relation-change flags, the Fig. 5 gain curve;
* :mod:`~tr2_core.evaluation.report` - tables, the JSON metrics file, per-frame
  recall files and their comparison;
* :mod:`~tr2_core.evaluation.reference` - a plain per-frame evaluator written
  from the spec, for tests and the benchmark only;
* :mod:`~tr2_core.evaluation.synthetic` - ground truth / predictions built in
  memory (tests, benchmark).
"""

from tr2_core.evaluation.predictions import load_predictions, save_predictions, validate_predictions
from tr2_core.evaluation.recall import EvaluationResult, evaluate, evaluate_detailed

__all__ = [
    "EvaluationResult",
    "evaluate",
    "evaluate_detailed",
    "load_predictions",
    "save_predictions",
    "validate_predictions",
]
