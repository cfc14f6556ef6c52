"""The arithmetic of one active-learning round, and how long it takes as plain compiled matrix
products on this machine: the limit a framework's round time can be measured against.

A round trains on the labelled set (forward and backward passes of every minibatch of every
epoch), scores the unlabelled pool (T stochastic passes; the layers before the first dropout
run once per input) and evaluates the test set (T passes as well). Each layer is a matrix
product: a Dense layer of a batch of b is (b x k) @ (k x n); a 3x3 convolution is the same
product over its unfolded patches (im2col). Its backward pass is two products of the same size
(the weight gradient, and the input gradient except at the first layer). The floor runs exactly
those products with random float32 matrices in one ``tf.function`` per phase: training as a
``tf.while_loop`` over the minibatches (each step depends on the one before), scoring and
evaluation in chunks of at most 64 MB an operand. Element-wise work (activations, dropout masks, the loss,
the optimizer update, pooling) is not counted: the floor is the products alone.
"""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Layers as products per input: (rows per input, k, n, stochastic part?). "prefix" layers come
# before the first dropout: in scoring they run once per input, the others T times.
MLP_LAYERS = [(1, 64, 128, "prefix"), (1, 128, 10, "sampled")]
CNN_LAYERS = [(26 * 26, 9, 32, "prefix"),         # conv 3x3x1 -> 32 on 28x28
              (24 * 24, 9 * 32, 32, "prefix"),    # conv 3x3x32 -> 32 on 26x26
              (1, 12 * 12 * 32, 128, "sampled"),  # dense after 2x2 max-pooling and dropout
              (1, 128, 10, "sampled")]
CHUNK_FLOATS = 16 * 2**20  # each operand of a chunk's product within 64 MB


def flops_of(layers, inputs: int, passes: int = 1, backward: bool = False) -> float:
    total = 0.0
    for index, (rows, k, n, _) in enumerate(layers):
        forward = 2.0 * rows * inputs * k * n * passes
        total += forward
        if backward:
            total += forward * (1 if index == 0 else 2)  # weight gradient (+ input gradient)
    return total


def scoring_flops(layers, inputs: int, samples: int) -> float:
    return sum(flops_of([layer], inputs, 1 if layer[3] == "prefix" else samples) for layer in layers)


def _train_floor(tf, layers, steps: int, batch: int):
    """The products of ``steps`` minibatches of ``batch``, forward and backward, in sequence."""
    mats = [(tf.random.uniform([rows * batch, k]), tf.random.uniform([k, n])) for rows, k, n, _ in layers]

    @tf.function(autograph=False)
    def train():
        def step(i, acc):
            for index, (a, w) in enumerate(mats):
                out = tf.matmul(a, w) + acc                      # forward
                acc = tf.reduce_mean(out[:1, :1]) * 0.0
                grad = tf.matmul(a, out, transpose_a=True)       # weight gradient
                if index:
                    tf.matmul(out, w, transpose_b=True)          # input gradient
                acc += tf.reduce_mean(grad[:1, :1]) * 0.0
            return i + 1, acc
        return tf.while_loop(lambda i, _: i < steps, step, (tf.constant(0), tf.constant(0.0)))[1]
    return train


def _pass_floor(tf, layers, inputs: int, samples: int, share_prefix: bool):
    """Every layer's product over ``inputs`` x its passes, in chunks of CHUNK_FLOATS."""
    work = []
    for rows, k, n, part in layers:
        passes = 1 if (share_prefix and part == "prefix") else samples
        total_rows = rows * inputs * passes
        chunk = min(total_rows, max(1, CHUNK_FLOATS // max(k, n)))
        work.append((tf.random.uniform([chunk, k]), tf.random.uniform([k, n]), math.ceil(total_rows / chunk)))

    @tf.function(autograph=False)
    def passes_fn():
        acc = tf.constant(0.0)
        for a, w, repeats in work:
            def body(i, acc, a=a, w=w):
                return i + 1, acc + tf.reduce_mean(tf.matmul(a, w)[:1, :1]) * 0.0
            acc = tf.while_loop(lambda i, _, repeats=repeats: i < repeats, body, (tf.constant(0), acc))[1]
        return acc
    return passes_fn


def _best_of(fn, repeats: int = 3) -> float:
    fn()  # trace
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn().numpy()
        best = min(best, time.perf_counter() - start)
    return best


def round_floor(layers, labelled: list[int], pool_sizes: list[int], test: int, epochs: int, batch: int,
                samples: int) -> dict:
    """FLOPs and floor seconds per phase, averaged over the given rounds (labelled-set size and
    unlabelled-pool size of each)."""
    import tensorflow as tf

    figures = {"train_flops": 0.0, "score_flops": 0.0, "eval_flops": 0.0,
               "train_floor_s": 0.0, "score_floor_s": 0.0, "eval_floor_s": 0.0}
    eval_seconds = _best_of(_pass_floor(tf, layers, test, samples, share_prefix=True))
    for n, pool in zip(labelled, pool_sizes):
        steps = epochs * math.ceil(n / batch)
        figures["train_flops"] += flops_of(layers, n, backward=True) * epochs
        figures["score_flops"] += scoring_flops(layers, pool, samples)
        figures["eval_flops"] += scoring_flops(layers, test, samples)
        figures["train_floor_s"] += _best_of(_train_floor(tf, layers, steps, batch))
        figures["score_floor_s"] += _best_of(_pass_floor(tf, layers, pool, samples, share_prefix=True))
        figures["eval_floor_s"] += eval_seconds
    rounds = len(labelled)
    figures = {key: value / rounds for key, value in figures.items()}
    figures["round_flops"] = figures["train_flops"] + figures["score_flops"] + figures["eval_flops"]
    figures["round_floor_s"] = figures["train_floor_s"] + figures["score_floor_s"] + figures["eval_floor_s"]
    return figures
