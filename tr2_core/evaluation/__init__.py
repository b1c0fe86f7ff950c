"""Action Genome scene-graph evaluation (Recall@K, mR@K, breakdowns).

Modules (NumPy only; nothing here imports torch):

* :mod:`~tr2_core.evaluation.predictions` - the predictions ``.npz`` contract:
  :func:`load_predictions`, :func:`save_predictions`, :func:`validate_predictions`;
* :mod:`~tr2_core.evaluation.metrics` - recall tables and their summaries;
* :mod:`~tr2_core.evaluation.changes` - where the GT relations change (flags
  per triplet, frame and video);
* :mod:`~tr2_core.evaluation.result` - :class:`EvaluationResult` (per-triplet
  ranks) and the metrics dict derived from it;
* :mod:`~tr2_core.evaluation.recall` - the fast, vectorised evaluator:
  :func:`evaluate` (metrics dict), :func:`evaluate_detailed` (per-triplet ranks);
* :mod:`~tr2_core.evaluation.breakdown` - per-family, per-predicate and
  time-variant breakdowns, the Fig. 5 gain curve;
* :mod:`~tr2_core.evaluation.report` - tables, the JSON metrics file, per-frame
  recall files and their comparison;
* :mod:`~tr2_core.evaluation.bootstrap` - paired bootstrap intervals over test
  videos for R@K and for the difference of two models (seeds averaged).

Imports go one way: metrics -> changes -> result -> recall -> breakdown ->
report; bootstrap imports none of them. The plain reference evaluator and the
in-memory test data live in
:mod:`tr2_core.testing` (test support, not part of the library).
"""

from tr2_core.evaluation.predictions import load_predictions, save_predictions, validate_predictions
from tr2_core.evaluation.recall import evaluate, evaluate_detailed
from tr2_core.evaluation.result import EvaluationResult

__all__ = [
    "EvaluationResult",
    "evaluate",
    "evaluate_detailed",
    "load_predictions",
    "save_predictions",
    "validate_predictions",
]
