"""rtinfer.train: training small models in NumPy only (no numba, no onnx, no runtime imports).

    from rtinfer.train import MLP, Adam, fit, datasets
    ds = datasets.load("digits")
    model = MLP([64, 64, 10], activation="relu", output="softmax", preprocess="standardize")
    history = fit(model, ds.X_train, ds.y_train, optimizer=Adam(1e-3), epochs=30, batch_size=32)
    model.score(ds.X_test, ds.y_test); model.save("digits.npz")

Trained models expose ``layers``, ``input_shape``, ``preprocessor``, ``output``, ``forward``,
``infer``, ``predict``, ``predict_proba`` and ``classes_`` for ``export.freeze`` (see
``rtinfer.train.network``). Modules, bottom up: _validate, layers / conv / residual (layers),
specs (layers from JSON), losses, schedules / optimizers, preprocessing, datasets, trainer
(``fit``), archive (checkpoint files), network (``Model``, ``Sequential``), models / cnn, checkpoint
(``load_model``), gradcheck.
"""

from __future__ import annotations

from . import datasets
from ._validate import ConvergenceWarning, DataError, DivergenceError
from .archive import CheckpointError
from .checkpoint import load_model, save_model
from .cnn import CNN
from .conv import AvgPool1D, AvgPool2D, BatchNorm, Conv1D, Conv2D, Flatten, GlobalAvgPool, MaxPool1D, MaxPool2D
from .gradcheck import check_gradients, gradient_errors
from .layers import ACTIVATIONS, Activation, Dense
from .losses import BinaryCrossEntropy, Loss, MeanSquaredError, SoftmaxCrossEntropy, get_loss
from .models import MLP, LinearRegression, LogisticRegression, SoftmaxRegression
from .network import Model, Sequential, apply_head
from .optimizers import SGD, AdaGrad, Adam, Momentum, Optimizer, RMSProp, get_optimizer
from .preprocessing import Standardizer, Whitener
from .residual import Residual
from .schedules import Constant, Cosine, InverseTime, Schedule, StepDecay
from .trainer import History, fit

__all__ = [
    "AvgPool1D", "AvgPool2D", "BatchNorm", "CNN", "Conv1D", "Conv2D", "Flatten", "GlobalAvgPool", "MaxPool1D",
    "MaxPool2D", "Residual", "Sequential",
    "ACTIVATIONS", "AdaGrad", "Adam", "Activation", "BinaryCrossEntropy", "CheckpointError", "Constant",
    "ConvergenceWarning", "Cosine", "DataError", "Dense", "DivergenceError", "History", "InverseTime",
    "LinearRegression", "LogisticRegression", "Loss", "MLP", "MeanSquaredError", "Model", "Momentum", "Optimizer",
    "RMSProp", "SGD", "Schedule", "SoftmaxCrossEntropy", "SoftmaxRegression", "Standardizer", "StepDecay",
    "Whitener", "apply_head", "check_gradients", "datasets", "fit", "get_loss", "get_optimizer",
    "gradient_errors", "load_model", "save_model",
]
