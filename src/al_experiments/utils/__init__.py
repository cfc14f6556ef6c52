"""Utilities kept from tf_al: logging and TensorFlow set-up helpers, plus seeding."""

from al_experiments.utils.logger import setup_logger
from al_experiments.utils.seeding import derive_seed, round_rng, seed_everything
from al_experiments.utils.tf import disable_tf_logs, set_tf_log_level, setup_growth

__all__ = [
    "setup_logger",
    "setup_growth",
    "set_tf_log_level",
    "disable_tf_logs",
    "seed_everything",
    "derive_seed",
    "round_rng",
]
