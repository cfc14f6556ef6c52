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


def mlp():
    import keras

    return keras.Sequential([
        keras.Input((64,)),
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
