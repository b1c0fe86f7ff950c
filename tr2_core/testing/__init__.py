"""Test support: NOT part of the library.

Code the test suite (``test/``) and the benchmarks (``bench/``) share; nothing
in ``tr2_core`` outside this package imports it (``test/test_evaluation.py``
checks). It ships with the package only so that ``bench/`` runs from an
installed copy.

* :mod:`~tr2_core.testing.reference` - a plain, per-frame evaluator written
  from docs/evaluation.md, to check the fast one against and to time it;
* :mod:`~tr2_core.testing.eval_fixtures` - ground truth, predictions and
  release records built in memory.
"""
