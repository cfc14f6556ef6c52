"""Model wrappers: a Keras network (or another model object) behind the interface the
active-learning loop needs (`interface.ActiveModel`)."""

from al_experiments.wrapper.deep_ensemble import DeepEnsemble
from al_experiments.wrapper.interface import ActiveModel
from al_experiments.wrapper.mc_dropout import McDropout
from al_experiments.wrapper.model import Model

__all__ = ["ActiveModel", "Model", "McDropout", "DeepEnsemble"]
