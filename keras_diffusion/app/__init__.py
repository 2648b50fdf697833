"""The application: what `kd` runs, as library functions.

Each `kd` command calls one function here, which a Python script may call
too: `train.train` (and `train.train_reflow`), `sample.sample`,
`evaluate.evaluate`, `train_evaluator.train_evaluator`,
`export.export_model`. They speak in parameters, validate them, and write
their files atomically. Below them sit the recipes (`recipes.py`: the
default model and training settings of each `kd train` kind), the
training callbacks (`callbacks.py`), reflow's resumable pairs
(`reflow_pairs.py`) and multi-device training (`distribution.py`).

The library beneath (`models/`, `samplers/`, `networks/`, ...) never
imports from here.
"""

from keras_diffusion.app import recipes

__all__ = ["recipes"]
