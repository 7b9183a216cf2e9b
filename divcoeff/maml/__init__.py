"""MAML in one place: the inner loop (:mod:`.inner`, torch.func, batched over tasks) and the
evaluation of a MAML checkpoint on episodes (:mod:`.evaluate`); meta-training uses the inner loop
from divcoeff.training.

The inner loop's functions are handed on here, so ``from divcoeff.maml import adapt_and_predict``
reads as before; :mod:`.evaluate` is imported by name (it needs the few-shot feature code).
"""
from divcoeff.maml.inner import adapt, adapt_and_predict, meta_forward, predict, split_state

__all__ = ["adapt", "adapt_and_predict", "meta_forward", "predict", "split_state"]
