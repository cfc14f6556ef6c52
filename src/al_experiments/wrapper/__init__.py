"""Model wrappers: a Keras network (or another model object) behind the interface the
active-learning loop needs (`interface.ActiveModel`) and what strategies may ask of it
(`interface.QueryModel`). Each wrapper holds a backend for its kind of model:
`keras_backend.KerasBackend`, `object_backend.ObjectBackend` or `ensemble_backend.EnsembleBackend`."""

from al_experiments.wrapper.deep_ensemble import DeepEnsemble
from al_experiments.wrapper.interface import ActiveModel, QueryModel
from al_experiments.wrapper.mc_dropout import McDropout
from al_experiments.wrapper.model import Model

__all__ = ["ActiveModel", "QueryModel", "Model", "McDropout", "DeepEnsemble"]
