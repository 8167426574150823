"""CNN: a ``Sequential`` model of convolution / pooling / batch-norm / flatten / dense /
activation / residual layers on channels-first samples.

    from rtinfer.train import CNN, Conv1D, MaxPool1D, GlobalAvgPool, Dense, Activation, fit
    model = CNN((1, 64), [Conv1D(1, 8, 9, padding="same"), Activation("relu"), MaxPool1D(2),
                          Conv1D(8, 16, 5, padding="same"), Activation("relu"), GlobalAvgPool(),
                          Dense(16, 4)], output="softmax", seed=0)
    fit(model, X, y, epochs=10)          # X (N, 1, 64) or flat (N, 64)

Samples are channels-first, ``input_shape`` = (C, L) or (C, H, W). Inputs may be given as
(N, *input_shape) or flattened to (N, prod(input_shape)) in C order; the preprocessor (if any)
works on the flattened features. The last layer must produce a vector (N, n_out): the logits.
The parameter layout (weights, biases, then BatchNorm running averages) is ``network.Model``'s.
"""

from __future__ import annotations

from .network import Sequential


class CNN(Sequential):
    """Sequential model on channels-first samples; see the module doc (and ``Sequential``)."""


__all__ = ["CNN"]
