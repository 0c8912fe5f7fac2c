"""Evaluation on the karma_* lm-eval tasks: runs, offline benchmark data, punkt_tab, run comparison."""
