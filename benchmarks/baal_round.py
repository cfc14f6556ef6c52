"""baal 2.1.0 (PyTorch, CPU) on the benchmark protocols; run only inside `.venv-baal`.

Written the way baal's example scripts (experiments/mlp_mcdropout.py, vgg_mcdropout_cifar10.py)
and its ActiveLearningExperiment write a run, in baal 2.x's API (ModelWrapper + TrainingArgs):
the network is a plain nn.Sequential emitting logits, patched by `patch_module` (MC dropout),
trained with CrossEntropyLoss through `ModelWrapper.train_on_dataset`; an `ActiveLearningLoop`
with `heuristics.BALD()` scores the whole unlabelled pool with `predict_on_dataset(iterations=T)`
and labels the top STEP_SIZE of the `ActiveLearningDataset`.

Settings (also printed in the JSON "settings"):
- fresh weights: the initial state dict is kept and reloaded at the start of every round (so
  every round starts from the same initial weights, as baal's examples do); a new Adam(lr=1e-3)
  each round (the examples keep one optimizer for the whole run; a new one matches the protocol).
- batch size 32 for training, pool scoring and test alike: TrainingArgs has a single batch_size,
  and 32 is the value of mlp_mcdropout.py; each MC batch is 32 x T rows (replicate_in_memory).
- DataLoader workers 0 (baal's default of 4 only adds process overhead on a 2-core machine);
  torch's default intra-op threads.
- test accuracy: argmax of the softmax averaged over T = SAMPLES MC-dropout passes, via
  predict_on_dataset; test_on_dataset(average_predictions=T) would average logits instead.
- layer init: torch's defaults, as a baal user gets them; `--init glorot` gives Keras's defaults
  instead (matters for accuracy, not for time: with 50 steps a round, torch's smaller default
  init trains less far).
- initial labels: protocol.initial_indices (class-balanced, numpy, AL seed); torch, numpy and
  random seeded with the AL seed.

Usage: .venv-baal/bin/python benchmarks/baal_round.py --protocol digits|cnn --seed S [--rounds R]
Prints one JSON line (the last line of stdout).
"""

import argparse
import json
import logging
import os
import random
import sys
import time
from copy import deepcopy
from importlib.metadata import version

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import structlog
import torch
from baal import ActiveLearningDataset, ModelWrapper
from baal.active import ActiveLearningLoop
from baal.active.heuristics import BALD
from baal.bayesian.dropout import patch_module
from baal.modelwrapper import TrainingArgs
from protocol import (
    BATCH_SIZE,
    CNN_ROUNDS,
    EPOCHS,
    INIT_SIZE,
    ROUNDS,
    SAMPLES,
    STEP_SIZE,
    digits_split,
    fashion_split,
    initial_indices,
)
from torch import nn
from torch.utils.data import TensorDataset

LR = 1e-3
WORKERS = 0
INITS = {"torch": "torch default layer init", "glorot": "Glorot-uniform kernels, zero biases"}

# baal logs every phase through structlog to stdout; keep stdout for the JSON line.
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def network(protocol, init):
    if protocol == "digits":
        net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
    else:
        net = nn.Sequential(  # Gal et al. (2017)
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Dropout(0.25), nn.Flatten(), nn.Linear(32 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10))
    if init == "glorot":  # Keras's default (Glorot-uniform kernels, zero biases), for parity
        for layer in net:
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
    return net


def data(protocol):
    if protocol == "digits":
        x_pool, x_test, y_pool, y_test = digits_split()
    else:
        x_pool, x_test, y_pool, y_test = fashion_split()
        x_pool, x_test = x_pool[:, None], x_test[:, None]  # NCHW
    return x_pool, x_test, y_pool.astype("int64"), y_test.astype("int64")


def main(protocol, seed, rounds, init="torch"):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    x_pool, x_test, y_pool, y_test = data(protocol)
    test_set = TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test))
    al_dataset = ActiveLearningDataset(TensorDataset(torch.from_numpy(x_pool), torch.from_numpy(y_pool)))
    # Nothing is labelled yet, so pool indices are the dataset's own indices.
    al_dataset.label(initial_indices(y_pool, INIT_SIZE, seed).tolist())

    model = patch_module(network(protocol, init))
    args = TrainingArgs(criterion=nn.CrossEntropyLoss(), batch_size=BATCH_SIZE, epoch=EPOCHS,
                        use_cuda=False, workers=WORKERS)
    wrapper = ModelWrapper(model, args)
    loop = ActiveLearningLoop(al_dataset, wrapper.predict_on_dataset, BALD(), query_size=STEP_SIZE,
                              iterations=SAMPLES, verbose=False)
    init_weights = deepcopy(model.state_dict())

    seconds, phases, accuracy, labels = [], {"train": [], "query": [], "eval": []}, [], []
    for _ in range(rounds):
        labels.append(len(al_dataset))
        start = time.perf_counter()
        model.load_state_dict(init_weights)
        args.optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        wrapper.train_on_dataset(al_dataset)
        trained = time.perf_counter()
        # [n, classes, T] logits -> mean softmax over the T passes.
        logits = wrapper.predict_on_dataset(test_set, iterations=SAMPLES, verbose=False)
        probs = torch.softmax(torch.from_numpy(logits), dim=1).mean(-1).numpy()
        accuracy.append(float(np.mean(probs.argmax(1) == y_test)))
        evaluated = time.perf_counter()
        loop.step()
        end = time.perf_counter()
        seconds.append(end - start)
        phases["train"].append(trained - start)
        phases["eval"].append(evaluated - trained)
        phases["query"].append(end - evaluated)

    later = seconds[1:] or seconds
    print(json.dumps({
        "protocol": protocol, "seed": seed, "round_seconds": seconds, "phase_seconds": phases,
        "mean_round_seconds_2_to_end": sum(later) / len(later),
        "test_accuracy": accuracy, "final_test_accuracy": accuracy[-1], "labels": labels,
        "settings": {
            "framework": "baal", "baal": version("baal"), "torch": torch.__version__,
            "device": "cpu", "torch_threads": torch.get_num_threads(), "dataloader_workers": WORKERS,
            "train_batch_size": BATCH_SIZE, "predict_batch_size": BATCH_SIZE,
            "test_batch_size": BATCH_SIZE, "replicate_in_memory": args.replicate_in_memory,
            "mc_samples": SAMPLES, "epochs": EPOCHS, "initial_labels": INIT_SIZE,
            "query_size": STEP_SIZE, "pool": len(x_pool), "test": len(x_test),
            "heuristic": "baal.active.heuristics.BALD", "dropout": "baal patch_module (MC dropout)",
            "optimizer": f"new torch.optim.Adam(lr={LR}) each round",
            "loss": "nn.CrossEntropyLoss on logits", "init": INITS[init],
            "reset": "fresh weights: initial state reloaded (same initial weights every round)",
            "initial_indices": "protocol.initial_indices (class-balanced) from the AL seed",
            "test_accuracy": "argmax of mean softmax over T MC-dropout passes (predict_on_dataset)",
            "round": "train, then test evaluation, then ActiveLearningLoop.step (score pool + label)",
        },
    }))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=["digits", "cnn"], default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--init", choices=list(INITS), default="torch")
    parser.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own)")
    cli = parser.parse_args()
    if cli.threads:
        torch.set_num_threads(cli.threads)
    rounds = cli.rounds or (ROUNDS if cli.protocol == "digits" else CNN_ROUNDS)
    main(cli.protocol, cli.seed, rounds, cli.init)
