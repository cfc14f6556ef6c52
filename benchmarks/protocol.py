"""The benchmark protocol, shared by both sides of the comparison (plain Python, no project imports).

scikit-learn digits, 70/30 split, MLP 64-128-10 with dropout 0.5 after the hidden layer, 20
initial labels, 6 rounds of 10 by BALD, 50 epochs of batch 32 per round, T = 20 samples.
"""

SEED = 0          # the train/test split; the active-learning seeds are 0 .. --seeds-1
SEEDS = 5
TEST_FRACTION = 0.3
INIT_SIZE = 20
STEP_SIZE = 10
ROUNDS = 6
EPOCHS = 50
BATCH_SIZE = 32
SAMPLES = 20
QUERY = "bald"


def digits_split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=TEST_FRACTION, random_state=SEED, stratify=y)


# The Keras APIs a network can be built with; each builds the same layers.
APIS = ("sequential", "functional", "subclassed")


def build(api, input_shape, layers):
    """``layers`` in order as a ``keras.Sequential``, a functional ``keras.Model(inputs, outputs)``
    or a subclassed ``keras.Model`` (built by one call, as a subclassed model must be before
    it is wrapped)."""
    import keras
    import numpy as np

    if api == "sequential":
        return keras.Sequential([keras.Input(input_shape), *layers])
    if api == "functional":
        x = inputs = keras.Input(input_shape)
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x)
    if api != "subclassed":
        raise ValueError(f"Unknown Keras API {api!r}: use one of {', '.join(APIS)}.")

    class Chain(keras.Model):
        def __init__(self, chain):
            super().__init__()
            self.chain = list(chain)

        def call(self, x, training=False):
            for layer in self.chain:
                x = layer(x, training=training)
            return x

    model = Chain(layers)
    model(np.zeros((1, *input_shape), "float32"))
    return model


def mlp(api="sequential"):
    import keras

    return build(api, (64,), [
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def gal_cnn(api="sequential"):
    """Gal et al. (2017)'s CNN for 28x28 gray images with a channel axis."""
    import keras

    return build(api, (28, 28, 1), [
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(10, activation="softmax"),
    ])


def summarise(round_seconds, accuracy):
    later = round_seconds[1:]
    return {
        "round_seconds": round_seconds,
        "mean_round_seconds_2_to_6": sum(later) / len(later),
        "final_test_accuracy": accuracy,
    }


# The `cnn` protocol: Gal et al. (2017)'s CNN on a Fashion-MNIST subset (Debian's copy), 20
# initial labels + 5 rounds of 10 by BALD, same EPOCHS / BATCH_SIZE / SAMPLES as above.
CNN_POOL = 10_000
CNN_TEST = 2_000
CNN_ROUNDS = 5
FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def _read_idx(path):
    """One gzipped IDX file (big-endian header: 0, 0, type 0x08 = uint8, ndim; then the dims)."""
    import gzip

    import numpy as np

    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an IDX file of uint8")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def fashion_split(seed=SEED):
    """(x_pool, x_test, y_pool, y_test): CNN_POOL training and CNN_TEST test images, (N, 28, 28)
    float32 in [0, 1], int64 labels, drawn by one numpy generator seeded with `seed`."""
    import os

    import numpy as np

    def load(prefix):
        x = _read_idx(os.path.join(FASHION_DIR, f"{prefix}-images-idx3-ubyte.gz"))
        y = _read_idx(os.path.join(FASHION_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
        return x, y

    rng = np.random.default_rng(seed)
    x_train, y_train = load("train")
    x_test, y_test = load("t10k")
    pool = rng.permutation(len(x_train))[:CNN_POOL]
    test = rng.permutation(len(x_test))[:CNN_TEST]
    x_pool, x_test = (x_train[pool] / 255.0).astype("float32"), (x_test[test] / 255.0).astype("float32")
    return x_pool, x_test, y_train[pool].astype("int64"), y_test[test].astype("int64")


def initial_indices(y, size, seed):
    """`size` indices into `y`, class-balanced (size // classes of each class, the remainder
    drawn from the rest), random from `seed`; sorted."""
    import numpy as np

    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    classes = np.unique(y)
    per_class = size // len(classes)
    chosen = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in classes]
    chosen = np.concatenate(chosen) if chosen else np.empty(0, dtype="int64")
    rest = np.setdiff1d(np.arange(len(y)), chosen)
    extra = rng.choice(rest, size - len(chosen), replace=False)
    return np.sort(np.concatenate([chosen, extra])).astype("int64")
