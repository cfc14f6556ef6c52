"""Batch acquisition as pure array math (numpy/scipy, no TensorFlow): each function takes
predictive samples, probabilities or embeddings and returns candidate positions, best first
(EPIG returns scores). They are exported from ``al_experiments.acquisition``; the registered
strategies in ``acquisition/builtin_batch.py`` feed them from a ``RoundView``."""
