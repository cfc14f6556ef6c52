"""The Hydra application: config schema, object building, one job, sweep callback, CLI.

Data flows one way: config -> objects (``build``) -> ``ActiveLearningLoop`` -> sinks (MLflow,
tf_al CSVs). The loop and the Python API know nothing of Hydra or MLflow.
"""
