"""Task2Vec embeddings (Achille et al. 2019), as used for the diversity coefficient.

- :mod:`.trace`: embedding layout (one value per Conv2d filter / BatchNorm2d channel) and the
  forward pass with train-mode (batch-statistics) BatchNorm that exposes layer gradients;
- :mod:`.head`: the published head step, many tasks at once;
- :mod:`.fisher_faithful`: the published Monte-Carlo Fisher ("montecarlo"), on
- :mod:`.fisher_pass`: one forward/backward pass giving each task's batch gradient (distinct
  images with multiplicities, only the weight gradients the embedding needs);
- :mod:`.fisher_exact`: the exact per-sample diagonal Fisher on the task's own images;
- :mod:`.embedding`: ``embed_tasks`` / ``embed_batch``, the entry points, and ``METHODS``, the
  registry of ``diversity.method`` (each method's ``embed`` in its own module);
- :mod:`.coefficient`: the diversity coefficient of a training set from its tasks' embeddings
  (the rule ``diversity``'s library).
"""
from divcoeff.task2vec.embedding import METHODS, embed_batch, embed_tasks, task_streams
from divcoeff.task2vec.trace import embedding_dim, embedding_layout

__all__ = ["METHODS", "embed_batch", "embed_tasks", "embedding_dim", "embedding_layout",
           "task_streams"]
