"""divcoeff: the Task2Vec diversity coefficient of training data against few-shot performance."""

__version__ = "0.1.0"
