"""Model wrappers: a Keras network behind the interface the active-learning loop needs."""

from al_experiments.wrapper.deep_ensemble import DeepEnsemble
from al_experiments.wrapper.mc_dropout import McDropout
from al_experiments.wrapper.model import Model

__all__ = ["Model", "McDropout", "DeepEnsemble"]
