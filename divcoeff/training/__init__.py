"""Controlled training of our own ResNet-12 checkpoints: PT and MAML with everything but the data fixed.

Both families share the architecture, the optimiser (Adam, same lr and weight decay), the
number of optimisation steps and the number of images drawn per step (PT batch =
MAML meta_batch * ways * (shots + queries)); the `training:` settings and that check live in
:class:`divcoeff.settings.TrainSettings`.

Modules: ``run`` (``train_checkpoint``, ``write_trained_checkpoint``, ``config_digest``), ``pt``
and ``maml`` (the two loops), ``common`` (what they share).
"""
from divcoeff.settings import MamlTrainSettings, TrainSettings

__all__ = ["MamlTrainSettings", "TrainSettings"]
