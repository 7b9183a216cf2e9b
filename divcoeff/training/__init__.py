"""Controlled training of our own ResNet-12 checkpoints: PT and MAML with everything but the data fixed.

Both families share the architecture, the optimiser (Adam, same lr and weight decay), the
number of optimisation steps and the number of images drawn per step (PT batch =
MAML meta_batch * ways * (shots + queries)); see :mod:`divcoeff.training.settings`.

Modules: ``settings`` (the checked `training:` config; no torch, so the Snakefile can check a
config when it is parsed), ``run`` (``train_checkpoint``, ``write_trained_checkpoint``,
``config_digest``), ``pt`` and ``maml`` (the two loops), ``common`` (what they share).
"""
from divcoeff.training.settings import MamlSettings, TrainSettings

__all__ = ["MamlSettings", "TrainSettings"]
