"""al-run's Hydra config tree, shipped as package data (found as ``pkg://al_experiments.conf``)."""
