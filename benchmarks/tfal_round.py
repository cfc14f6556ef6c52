"""tf_al 0.1.1 on the benchmark protocol; run inside a virtualenv where tf_al is installed.

Prints one JSON line. tf_al needs one-hot targets with categorical_crossentropy on Keras 3.
Usage: python tfal_round.py [SEED]
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from protocol import (BATCH_SIZE, EPOCHS, INIT_SIZE, QUERY, ROUNDS, SAMPLES, STEP_SIZE,  # noqa: E402
                      digits_split, mlp, summarise)
from tf_al import ActiveLearningLoop, Config, Dataset  # noqa: E402
from tf_al.wrapper import McDropout  # noqa: E402


def main(seed: int) -> None:
    x_train, x_test, y_train, y_test = digits_split()
    one_hot = np.eye(10, dtype="float32")
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    config = Config(fit={"epochs": EPOCHS, "batch_size": BATCH_SIZE},
                    query={"sample_size": SAMPLES}, eval={"sample_size": SAMPLES})
    model = McDropout(mlp(), config)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["categorical_accuracy"])
    dataset = Dataset(x_train, one_hot[y_train], test=(x_test, one_hot[y_test]), init_size=INIT_SIZE)
    loop = ActiveLearningLoop(model, dataset, QUERY, step_size=STEP_SIZE, max_rounds=ROUNDS)
    seconds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        loop.step()
        seconds.append(time.perf_counter() - start)
    # Accuracy of the last round's network (trained before the last annotation), computed
    # directly: tf_al's own accuracy column is unreliable (see tf_al_layout.md).
    probs = np.asarray(model(x_test, sample_size=SAMPLES)).mean(axis=1)
    accuracy = float(np.mean(probs.argmax(axis=1) == y_test))
    print(json.dumps(summarise(seconds, accuracy)))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
