"""karma-hf: Kinship-Aware pReference MApping (KARMA) for the Hugging Face alignment stack.

Import the stage you need (``karma_hf.scores``, ``karma_hf.kinship``, ...); this package
root stays light so that ``import karma_hf`` never pulls torch, transformers or TRL.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
