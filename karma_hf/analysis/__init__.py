"""Analysis of KARMA sets and origin models: quality report, factors, figures, kinship plots."""
