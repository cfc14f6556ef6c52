"""``DeepEnsemble``: M independently initialised networks (Lakshminarayanan et al., 2017).

Each member is a plain ``Model`` around its own copy of the network, so training and prediction
reuse the compiled trainer and sampler of the Keras backend unchanged; the ensemble's backend
(``ensemble_backend.EnsembleBackend``) asks the members through their public methods only. The
ensemble's predictive samples are the members' softmax outputs, stacked as the sample axis:
``(N, M, C)``. Every query function therefore runs on it as on MC-dropout samples, with T = M.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np

from al_experiments.config import Config
from al_experiments.utils.seeding import derive_seed
from al_experiments.validation import WHOLE_AT_LEAST_1, optional, reject_unknown_kwargs
from al_experiments.wrapper.keras_metrics import is_class_metric
from al_experiments.wrapper.model import Model


class DeepEnsemble(Model):
    """An ensemble of ``members`` networks of one architecture, each trained on the labelled set.

    Args:
        model: A Keras network (the other members are ``keras.models.clone_model`` copies with
            freshly drawn weights), a function that builds a new network per call, or a sequence
            of networks (one per member).
        config: ``Config`` shared by all members. ``query``/``eval`` ``sample_size`` is ignored:
            the samples are the members' predictions, so T is always ``members``.
        members: Ensemble size M (default 5; the length of ``model`` when it is a sequence).
        **kwargs: As for ``Model`` (``name``, ``reset``, ``fast_fit``, ...); ``reset`` applies to
            every member, each with its own seed derived from (seed, member), and per round from
            (seed, round, member), so members differ and a job is deterministic.
    """

    def __init__(self, model: Any, config: Config | None = None, members: int | None = None, **kwargs: Any) -> None:
        # Checked before the members are built (Model.__init__ checks again, at no cost).
        reject_unknown_kwargs(type(self).__name__, kwargs, self._accepted_keywords())
        kwargs.setdefault("model_type", "ensemble")  # tf_al's dev branch named it so
        self._member_count = members
        super().__init__(model, config, **kwargs)
        self.set_seed(self._seed)

    def _make_backend(self, model: Any):
        """The members, one ``Model`` per network, with this wrapper's settings."""
        # Imported here: TensorFlow loads only where a network is wrapped.
        from al_experiments.wrapper.ensemble_backend import EnsembleBackend
        from al_experiments.wrapper.keras_backend import compiled_metrics

        networks = _member_networks(model, self._member_count)
        backend = EnsembleBackend([
            Model(
                network, self._config, model_type=f"member{index}", reset=self.reset_policy,
                fast_fit=self.fast_fit, xla=self.xla, classification=self._classification, is_binary=self._is_binary,
                checkpoint_path=os.path.join(self.checkpoint_path, f"member_{index}"),
            )
            for index, network in enumerate(networks)
        ])
        first = networks[0]
        if getattr(first, "optimizer", None) is not None and getattr(first, "loss", None) is not None:
            # The network came compiled: give every member the same setup.
            metrics = [m for m in compiled_metrics(first) if not is_class_metric(m)]
            backend.compile(optimizer=first.optimizer, loss=first.loss, metrics=metrics)
        return backend

    # ------------------------------------------------------------------ members
    @property
    def members(self) -> list[Model]:
        """The member wrappers (one ``Model`` per network)."""
        return list(self._backend.members)

    @property
    def reset_policy(self) -> str:
        return self._reset_policy

    @reset_policy.setter
    def reset_policy(self, value: str) -> None:
        # Model.__init__ assigns it before the members exist; later changes reach every member.
        self._reset_policy = value
        backend = getattr(self, "_backend", None)
        for member in backend.members if backend is not None else ():
            member.reset_policy = value

    def set_seed(self, seed: int) -> None:
        """Seed the ensemble; member m draws from ``derive_seed(seed, "member", m)``."""
        super().set_seed(seed)
        for index, member in enumerate(self._backend.members):
            member.set_seed(derive_seed(self._seed, "member", index))

    def renew(self, config: Config) -> None:
        """``Model.renew`` for the ensemble and every member."""
        super().renew(config)
        for member in self._backend.members:
            member.renew(config)

    def stochastic(self) -> bool:
        """Samples differ from one another (one per member), though each member is deterministic."""
        return True

    def __call__(self, inputs: Any, sample_size: int | None = None, batch_size: int | None = None,
                 **kwargs: Any) -> np.ndarray:
        """The members' class probabilities ``(N, M, C)``; ``sample_size`` is ignored."""
        return self.predictive_samples(inputs, sample_size, batch_size)


def _member_networks(model: Any, members: int | None) -> list[Any]:
    """One network per member: the given sequence, M builder calls, or the network plus clones."""
    import keras  # here, not at the top: importing the wrappers must not load TensorFlow

    optional(WHOLE_AT_LEAST_1).check("members", members)
    if isinstance(model, Sequence):
        networks = list(model)
        if not networks or (members is not None and members != len(networks)):
            raise ValueError(
                f"DeepEnsemble got {len(networks)} networks but members={members}; pass one network per member."
            )
        return networks
    count = 5 if members is None else int(members)
    if isinstance(model, keras.Model):
        return [model] + [_clone(model) for _ in range(count - 1)]
    if callable(model):
        return [_built(model) for _ in range(count)]
    raise ValueError(
        f"DeepEnsemble needs a Keras model, a function that builds one, or a list of them; got {type(model).__name__}."
    )


def _clone(network: Any) -> Any:
    """Same architecture, freshly initialised weights (``clone_model`` never copies weights)."""
    import keras  # here, not at the top: importing the wrappers must not load TensorFlow

    try:
        return keras.models.clone_model(network)
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise ValueError(
            f"Cannot clone the network {network.name!r} ({exc}); pass a function that builds a new "
            "network per call, or a list of networks, instead."
        ) from None


def _built(builder: Callable[[], Any]) -> Any:
    import keras  # here, not at the top: importing the wrappers must not load TensorFlow

    network = builder()
    if not isinstance(network, keras.Model):
        raise ValueError(f"The network builder returned {type(network).__name__}, not a Keras model.")
    return network
