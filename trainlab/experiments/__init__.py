"""Experiments built from ordinary runs: k-fold cross-validation, hyperparameter search, run comparison.

Every fold and every trial is a normal run directory, so ``trainlab eval``, ``report`` and ``compare`` work on
them unchanged.
"""
