"""The space file: read, override and check it whole before anything runs (:func:`load_space`),
and the configurations it describes (Optuna's define-by-run sampling, the default configuration).

A space file (see ``spaces/`` and ``docs/space-file.md``)::

    name: lens_finding
    data: {format: fits_csv, path: data/lens_finding, simulate: lens_finding}
    metric: val_auc
    trial: {epochs: 12, batch_size: 64, resources: {cpu: 1, gpu: 0.25}}
    space:
      lr: {loguniform: [1.0e-4, 3.0e-3]}
      scheduler: {choice: [exponential, cosine_warm_restarts]}
      gamma: {uniform: [0.85, 0.99], when: {scheduler: exponential}}
    search: {algorithm: optuna, num_samples: 40, scheduler: asha}
    final: {ensemble: 3, tta: true, threshold: f1}
    wandb: {project: lens-search, mode: auto}
    cpu: {trial: {epochs: 4}, space: {backbone: simple_cnn}}   # applied when there is no GPU

``trial`` holds fixed trainable settings, ``space`` searched ones: a fixed value or one
distribution (``choice``, ``uniform``, ``loguniform``, ``int`` with inclusive bounds), optionally
only ``when`` other parameters take given values. Every problem in a file is reported at once, in
one line naming the file and each key.
"""

from search.space.check import TRAIN_KEYS, pick_distance
from search.space.load import apply_overrides, load_space, read_yaml
from search.space.points import (backbone_choices, complete_point, default_config, define_by_run,
                                 dependency_order, largest_batch)
from search.space.schema import (AUTO, Distribution, FinalSettings, SearchSettings, Space,
                                 WandbSettings)

__all__ = ["AUTO", "TRAIN_KEYS", "Distribution", "FinalSettings", "SearchSettings", "Space",
           "WandbSettings", "apply_overrides", "backbone_choices", "complete_point", "default_config",
           "define_by_run", "dependency_order", "largest_batch", "load_space", "pick_distance", "read_yaml"]
