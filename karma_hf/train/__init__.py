"""Training on KARMA sets with TRL: arguments, data, the stage registry, the runner and callbacks.

``from karma_hf.train import train`` runs ``karma train STAGE`` in-process.
"""

from karma_hf.train.runner import TrainResult, build_trainer, train

__all__ = ["TrainResult", "build_trainer", "train"]
