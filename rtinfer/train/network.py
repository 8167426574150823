"""The base of every trainable model: a stack of layers on one flat parameter vector.

Every model exposes the interface ``export.freeze`` relies on:

- ``layers``: list of layers (``Dense``, ``Activation``, conv / pooling / batch-norm / flatten,
  ``Residual``; the protocol is in ``rtinfer.train.layers``); the last produces the logits.
- ``input_shape``: per-sample shape, (d,) or channels-first (C, L) / (C, H, W); inputs are
  accepted as (N, *input_shape) or flattened (N, prod(input_shape)) in C order.
- ``preprocessor``: None or a fitted Standardizer/Whitener with ``as_affine() -> (A, c)``; it
  works on the flattened features.
- ``output``: the head applied to the logits: "identity", "sigmoid" (one logit) or "softmax".
- ``forward(X)`` -> logits (N, n_out) float64, preprocessing included; ``infer(X)`` ->
  head(forward(X)); ``predict(X)`` (class labels for classifiers); ``predict_proba(X)``.
- ``classes_``: the class labels of a classifier, sorted (any one kind: integers, strings, ...);
  output j of a softmax model (or the logit's sign for a sigmoid model) stands for classes_[j].

Parameters of all layers live in one flat float64 vector (``theta``; the layers' arrays are
views into it): every "weight" parameter (Dense W, conv W; L2-decayed) in layer order, then
every "bias" (biases, BatchNorm gamma/beta), then every "state" array (BatchNorm running
averages: never given a gradient, so optimizers leave them alone, while checkpoints, early
stopping and divergence recovery keep them with their weights). The training objective is
``loss(logits, targets) + 0.5 * l2 * sum of squared weights``.

Classes: a new fit takes ``classes_`` = the sorted distinct labels of y. A model with a fixed
number of outputs K (an MLP, a sigmoid head: K = 2) accepts fewer distinct labels only when
they are integers in [0, K) (classes_ = 0..K-1); a resumed fit maps y through the existing
classes_.

A preprocessor given unfitted is fitted by the first ``fit`` on that call's training data only
(after any validation split) and is kept as is by later ``fit`` calls.

scikit-learn manners: ``get_params`` returns the constructor arguments exactly as given and
``set_params`` re-runs the constructor with the changed ones (an unfitted model), so
``sklearn.base.clone``, ``cross_val_score`` and ``GridSearchCV`` work; scikit-learn is never
imported here except inside ``__sklearn_tags__``, which only scikit-learn calls.

Checkpoints: ``save(path)``; ``checkpoint_contents`` / ``restore_checkpoint`` are the model's
half of the format described in ``rtinfer.train.checkpoint``.
"""

from __future__ import annotations

import functools
import inspect
import math

import numpy as np

from . import trainer
from ._validate import DataError, check_class_labels, check_nonneg_float, check_targets, check_X
from .archive import CheckpointError, write_archive
from .layers import Dense, sigmoid
from .losses import get_loss
from .optimizers import optimizer_from_config
from .preprocessing import PREPROCESSORS, make_preprocessor
from .specs import layer_from_spec

HEADS = ("identity", "sigmoid", "softmax")
RELU_FAMILY = ("relu", "leaky_relu")
INITS = ("auto", "he", "glorot")
GROUP_ORDER = {"weight": 0, "bias": 1, "state": 2}


def apply_head(output: str, z: np.ndarray) -> np.ndarray:
    """The model head on logits z (N, k): identity, sigmoid, or softmax over axis 1 (max first)."""
    if output == "identity":
        return np.array(z, dtype=np.float64)
    if output == "sigmoid":
        return sigmoid(z)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def init_dense(layer: Dense, activation: str, rng: np.random.Generator) -> None:
    """He normal (std sqrt(2/n_in)) before a ReLU-family activation, else Glorot/Xavier uniform
    (limit sqrt(6/(n_in+n_out))); biases zero."""
    n_in, n_out = layer.n_in, layer.n_out
    if activation in RELU_FAMILY:
        layer.W = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
    else:
        limit = np.sqrt(6.0 / (n_in + n_out))
        layer.W = rng.uniform(-limit, limit, size=(n_in, n_out))
    layer.b = np.zeros(n_out)


def init_layers(layers: list, rng: np.random.Generator, init: str = "auto") -> None:
    """Initialize every Dense and convolution in ``layers`` (residual bodies and shortcuts
    included), in order: with init="auto", He normal when the next activation (looking past
    batch-norm and pooling, up to the next Dense / convolution / block) is ReLU-family, else
    Glorot uniform; "he" / "glorot" use one scheme for all. Biases zero."""
    for i, layer in enumerate(layers):
        kind = getattr(layer, "kind", None)
        if kind == "residual":
            init_layers(layer.body, rng, init)
            if layer.shortcut is not None:
                init_layers([layer.shortcut], rng, init)
            continue
        if kind not in ("dense", "conv"):
            continue
        scheme = "identity"
        for nxt in layers[i + 1:]:
            nxt_kind = getattr(nxt, "kind", None)
            if nxt_kind == "activation":
                scheme = nxt.name
                break
            if nxt_kind in ("dense", "conv", "residual"):
                break
        if init != "auto":
            scheme = "relu" if init == "he" else "identity"
        if kind == "dense":
            init_dense(layer, scheme, rng)
        elif scheme in RELU_FAMILY:
            layer.W = rng.normal(0.0, np.sqrt(2.0 / layer.fan_in), size=layer.w_shape)
            layer.b = np.zeros(layer.out_channels)
        else:
            limit = np.sqrt(6.0 / (layer.fan_in + layer.fan_out))
            layer.W = rng.uniform(-limit, limit, size=layer.w_shape)
            layer.b = np.zeros(layer.out_channels)


def keeps_params(init):
    """Decorator for a model's ``__init__``: records its arguments exactly as given, for
    ``get_params`` (the outermost constructor of a subclass chain wins)."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        del params["self"]
        init(self, *args, **kwargs)
        self._params = params

    return wrapper


def _walk(layers):
    """Every layer object, residual bodies and shortcuts included."""
    for layer in layers:
        yield layer
        if getattr(layer, "kind", None) == "residual":
            yield from _walk(layer.body)
            if layer.shortcut is not None:
                yield layer.shortcut


def _preview(values: np.ndarray, limit: int = 6) -> str:
    items = [repr(v) for v in values[:limit].tolist()]
    return ", ".join(items) + (", ..." if len(values) > limit else "")


def _label_indices(classes: np.ndarray, labels: np.ndarray, name: str) -> np.ndarray:
    """Index of each label in the sorted ``classes`` (int64); DataError for a label not in it."""
    if (classes.dtype.kind == "U") != (labels.dtype.kind == "U"):
        raise DataError(f"{name} holds {labels.dtype} labels but the model's classes_ are {classes.dtype} "
                        f"({_preview(classes)})")
    idx = np.searchsorted(classes, labels)
    found = classes[np.minimum(idx, len(classes) - 1)] == labels
    if not found.all():
        i = int(np.argmin(found))
        raise DataError(f"{name} label {labels[i].item()!r} at index {i} is not one of the model's classes_ "
                        f"({_preview(classes)})")
    return idx.astype(np.int64)


def _integer_valued(values: np.ndarray) -> bool:
    if values.dtype.kind in "iub":
        return True
    return values.dtype.kind == "f" and bool(np.all(values == np.round(values)))


class Model:
    """Base class: parameter storage, inference, target encoding, the training objective,
    scikit-learn parameters and checkpoint contents. Subclasses set the layers (``_install``)."""

    def __init__(self, *, output: str, l2: float = 0.0, preprocess=None, seed: int = 0):
        if output not in HEADS:
            raise ValueError(f"output must be one of {HEADS}; got {output!r}")
        self.output = output
        self.l2 = check_nonneg_float(l2, "l2")
        self.preprocessor = make_preprocessor(preprocess)
        self.seed = int(seed)
        self.layers: list = []
        self.input_shape: tuple | None = None
        self.layer_shapes_: list = []
        self.classes_: np.ndarray | None = None
        self.history_ = None
        self.optimizer_ = None  # the optimizer of the last fit, with its state (resume)
        self.train_state_: dict | None = None  # the last fit's settings and shuffle-stream state
        self._theta = np.zeros(0)
        self._grad = np.zeros(0)
        self._n_decay = 0
        self._l2_buf = np.zeros(0)

    # ----------------------------------------------------------------- structure and parameters
    def _install(self, layers: list, input_shape) -> None:
        """Chain ``layers`` from ``input_shape`` to a vector of logits, then bind every parameter
        into one flat vector (weights, then biases, then state; see the module doc)."""
        shape = tuple(int(d) for d in input_shape)
        seen: set = set()
        for layer in _walk(layers):
            if id(layer) in seen:
                raise ValueError(f"layer {layer!r} appears twice in the model; every position needs its own layer")
            seen.add(id(layer))
        shapes = []
        for i, layer in enumerate(layers):
            if not hasattr(layer, "build"):
                raise ValueError(f"layer {i}: unsupported layer type {type(layer).__name__}")
            try:
                shape = tuple(layer.build(shape))
            except ValueError as exc:
                raise ValueError(f"layer {i}: {exc}") from None
            shapes.append(shape)
        if len(shape) != 1:
            raise ValueError(f"the last layer must give a vector of logits; it gives {shape} per sample "
                             f"(add Flatten() or GlobalAvgPool() and a Dense)")
        entries = [(i, name, tuple(shp), group) for i, layer in enumerate(layers)
                   for name, shp, group in layer.param_specs()]
        entries.sort(key=lambda e: GROUP_ORDER[e[3]])  # stable: layer order within each group
        total = sum(math.prod(e[2]) for e in entries)
        theta, grad = np.zeros(total), np.zeros(total)
        views: dict[int, dict] = {}
        offset = 0
        for i, name, shp, _group in entries:
            size = math.prod(shp)
            views.setdefault(i, {})[name] = (theta[offset:offset + size].reshape(shp),
                                             grad[offset:offset + size].reshape(shp))
            offset += size
        for i, layer in enumerate(layers):
            if i in views:
                layer.bind_params(views[i])
        self.layers = list(layers)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.layer_shapes_ = shapes
        self._theta, self._grad = theta, grad
        self._n_decay = sum(math.prod(e[2]) for e in entries if e[3] == "weight")
        self._l2_buf = np.zeros(self._n_decay)

    def _unbuild(self) -> None:
        self.layers, self.input_shape, self.layer_shapes_ = [], None, []
        self._theta, self._grad, self._n_decay, self._l2_buf = np.zeros(0), np.zeros(0), 0, np.zeros(0)

    @property
    def built(self) -> bool:
        return bool(self.layers)

    @property
    def is_classifier(self) -> bool:
        return self.output != "identity"

    @property
    def n_features_in_(self) -> int | None:
        return int(math.prod(self.input_shape)) if self.built else None

    @property
    def n_outputs_(self) -> int | None:
        return self.layer_shapes_[-1][0] if self.built else None

    @property
    def n_parameters(self) -> int:
        return int(self._theta.size)

    @property
    def n_trainable(self) -> int:
        """Parameters that get gradients (everything but BatchNorm running averages)."""
        state = sum(math.prod(shape) for layer in self.layers for _, shape, group in layer.param_specs()
                    if group == "state")
        return self.n_parameters - state

    @property
    def theta(self) -> np.ndarray:
        """The flat parameter vector itself (P,) float64: writing it changes the model."""
        return self._theta

    @property
    def grad(self) -> np.ndarray:
        """The flat gradient vector (P,) float64 written by ``backward`` / ``objective``."""
        return self._grad

    def get_parameters(self) -> np.ndarray:
        """A copy of the flat parameter vector (see the module doc for the layout)."""
        return self._theta.copy()

    def set_parameters(self, theta) -> None:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.shape != self._theta.shape:
            raise ValueError(f"parameter vector must have shape {self._theta.shape}; got {theta.shape}")
        self._theta[...] = theta

    def _require_built(self) -> None:
        if not self.built:
            raise ValueError(f"{type(self).__name__} is not fitted yet")

    def _build(self, n_features: int, n_outputs: int) -> None:
        raise AssertionError(f"{type(self).__name__} is built at construction")

    def ensure_built(self, n_features: int, n_outputs: int) -> None:
        """Build an unbuilt model for (n_features, n_outputs), or check that a built one fits them."""
        if not self.built:
            self._build(n_features, n_outputs)
            return
        if n_features != self.n_features_in_:
            raise DataError(f"X has {n_features} features; the model expects {self.n_features_in_}")
        if n_outputs != self.n_outputs_:
            raise DataError(f"targets need {n_outputs} outputs; the {type(self).__name__} has {self.n_outputs_}")

    # ------------------------------------------------------------------------------ inference
    def flatten_input(self, X, name: str = "X"):
        """(N, *input_shape) -> (N, prod(input_shape)); anything else is returned unchanged (and
        then validated as a flat (N, d) array)."""
        if self.input_shape is None or len(self.input_shape) < 2:
            return X
        arr = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if arr.ndim == 1 + len(self.input_shape):
            if tuple(arr.shape[1:]) != self.input_shape:
                raise DataError(f"{name} has per-sample shape {tuple(arr.shape[1:])}; the model expects "
                                f"{self.input_shape} (or flat {self.n_features_in_})")
            return arr.reshape(arr.shape[0], -1)
        if arr.ndim > 2:
            raise DataError(f"{name} has shape {arr.shape}; expected (N, {', '.join(map(str, self.input_shape))}) "
                            f"or (N, {self.n_features_in_})")
        return arr

    def transform_input(self, X) -> np.ndarray:
        """Validated, flattened X (N, d) float64 after the preprocessor (if any)."""
        self._require_built()
        X = check_X(self.flatten_input(X), n_features=self.n_features_in_)
        if self.preprocessor is not None:
            X = self.preprocessor.transform(X)
        return X

    def forward_layers(self, x: np.ndarray) -> np.ndarray:
        """Logits of preprocessed, flat inputs x (N, d) (inference mode)."""
        x = x.reshape((x.shape[0],) + self.input_shape)
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def forward(self, X) -> np.ndarray:
        """Logits (N, n_out) float64, preprocessing included."""
        return self.forward_layers(self.transform_input(X))

    def infer(self, X) -> np.ndarray:
        """head(forward(X)) (N, n_out) float64: what a frozen model must reproduce."""
        return apply_head(self.output, self.forward(X))

    def predict(self, X) -> np.ndarray:
        """Class labels (classes_) for classifiers; values (N,) or (N, k) for regressors."""
        z = self.forward(X)
        if self.output == "identity":
            return z[:, 0] if z.shape[1] == 1 else z
        if self.output == "sigmoid":
            return self.classes_[(z[:, 0] > 0.0).astype(np.int64)]
        return self.classes_[np.argmax(z, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (N, K), column j for classes_[j]; for a sigmoid head the columns are
        [P(classes_[0]), P(classes_[1])]."""
        if not self.is_classifier:
            raise ValueError(f"{type(self).__name__} is a regressor; it has no predict_proba")
        p = self.infer(X)
        if self.output == "sigmoid":
            return np.column_stack([1.0 - p[:, 0], p[:, 0]])
        return p

    def score(self, X, y) -> float:
        """Accuracy for classifiers, R^2 (averaged over outputs) for regressors."""
        if self.is_classifier:
            labels = check_class_labels(y)
            pred = self.predict(X)
            if len(pred) != len(labels):
                raise DataError(f"X has {len(pred)} samples but y has {len(labels)}")
            return float(np.mean(pred == labels))
        t = check_targets(y, self.n_outputs_)
        z = self.forward(X)
        if len(z) != len(t):
            raise DataError(f"X has {len(z)} samples but y has {len(t)}")
        ss_res = ((t - z) ** 2).sum(axis=0)
        ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
        ss_tot[ss_tot == 0.0] = 1.0
        return float(np.mean(1.0 - ss_res / ss_tot))

    # ------------------------------------------------------------------------------ targets
    def _n_classes_for(self, found: np.ndarray) -> int:
        """Outputs of an unbuilt softmax model for the distinct labels ``found``."""
        if len(found) < 2:
            raise DataError(f"y has a single class ({_preview(found)}); a classifier needs >= 2")
        return len(found)

    def _classes_from(self, labels: np.ndarray) -> np.ndarray:
        found = np.unique(labels)
        if self.output == "sigmoid":
            n_cls = 2
        elif self.built:
            n_cls = self.n_outputs_
        else:
            n_cls = self._n_classes_for(found)
        what = f"{type(self).__name__}" + (" (sigmoid output)" if self.output == "sigmoid" else "")
        if len(found) > n_cls:
            raise DataError(f"y has {len(found)} classes ({_preview(found)}); the {what} has {n_cls}")
        if len(found) < n_cls:
            if _integer_valued(found) and found.min() >= 0 and found.max() < n_cls:
                return np.arange(n_cls, dtype=np.int64)
            raise DataError(f"y has {len(found)} class(es) ({_preview(found)}) for the {n_cls} of the {what}; "
                            f"with fewer distinct labels than outputs the labels must be integers in [0, {n_cls})")
        return found

    def target_encoding(self, y, n_samples: int | None = None, *, fit_classes: bool = True, name: str = "y"):
        """(targets for the loss, number of model outputs, classes) without changing the model.

        identity: (N, k) float64; sigmoid: (N,) float64 in {0, 1}; softmax: (N,) int64 indices
        into classes. fit_classes: derive the classes from y (see the module doc); else (or
        when the model has none yet) map y through ``classes_``."""
        if self.output == "identity":
            t = check_targets(y, self.n_outputs_, name=name)
            k, classes = t.shape[1], None
        else:
            if self.output == "sigmoid" and self.built and self.n_outputs_ != 1:
                raise ValueError(f"a sigmoid output needs 1 logit; the last layer has {self.n_outputs_}")
            labels = check_class_labels(y, name=name)
            classes = self._classes_from(labels) if fit_classes or self.classes_ is None else self.classes_
            t = _label_indices(classes, labels, name)
            if self.output == "sigmoid":
                t, k = t.astype(np.float64), 1
            else:
                k = len(classes)
        if n_samples is not None and t.shape[0] != n_samples:
            raise DataError(f"X has {n_samples} samples but {name} has {t.shape[0]}")
        return t, k, classes

    def encode_targets(self, y, n_samples: int | None = None, *, fit_classes: bool = True, name: str = "y"):
        """``target_encoding`` that also sets ``classes_`` (when fit_classes): (targets, outputs)."""
        t, k, classes = self.target_encoding(y, n_samples, fit_classes=fit_classes, name=name)
        if classes is not None:
            self.classes_ = classes
        return t, k

    # ------------------------------------------------------------------------------ training
    def forward_train(self, x: np.ndarray) -> np.ndarray:
        """Training-mode logits of preprocessed, flat inputs x (N, d); layers keep what
        ``backward`` needs, and BatchNorm updates its running averages."""
        x = x.reshape((x.shape[0],) + self.input_shape)
        for layer in self.layers:
            x = layer.forward_train(x)
        return x

    def backward(self, dz: np.ndarray) -> None:
        """Write dLoss/dtheta into ``grad`` from dLoss/dlogits dz (after ``forward_train``)."""
        for i in range(len(self.layers) - 1, -1, -1):
            dz = self.layers[i].backward(dz, need_dx=i > 0)

    def penalty(self) -> float:
        """0.5 * l2 * sum of squared weights."""
        if not self.l2:
            return 0.0
        # squares summed by a ufunc, not np.dot: BLAS ddot spreads 10^4 products over threads,
        # which stall on a busy machine
        w = self._theta[: self._n_decay]
        return 0.5 * self.l2 * float(np.add.reduce(np.multiply(w, w, out=self._l2_buf)))

    def add_penalty_gradient(self) -> float:
        """Add the L2 term's gradient l2 * W to ``grad``; return its value (0.0 without l2)."""
        if not self.l2:
            return 0.0
        value = self.penalty()
        n = self._n_decay
        np.multiply(self._theta[:n], self.l2, out=self._l2_buf)
        self._grad[:n] += self._l2_buf
        return value

    def objective(self, Xp: np.ndarray, t, loss) -> float:
        """Training objective on preprocessed inputs Xp; writes its gradient into ``grad``."""
        z = self.forward_train(Xp)
        value, dz = loss.value_and_grad(z, t)
        self.backward(dz)
        return value + self.add_penalty_gradient()

    def gradient(self) -> np.ndarray:
        """The flat gradient vector written by the last ``objective`` call (a view)."""
        return self._grad

    def default_loss(self):
        return get_loss(None, self.output)

    def fit(self, X, y, **kwargs):
        """Mini-batch training; keyword arguments as ``rtinfer.train.fit``. Returns self."""
        trainer.fit(self, X, y, **kwargs)
        return self

    # ------------------------------------------------------------------------ scikit-learn
    def get_params(self, deep: bool = True) -> dict:
        """The constructor arguments, exactly as given."""
        return dict(self._params)

    def set_params(self, **params):
        """Re-run the constructor with ``params`` changed: the model is new (unfitted)."""
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise ValueError(f"invalid parameter(s) {', '.join(unknown)} for {type(self).__name__}; "
                             f"valid: {', '.join(self._params)}")
        self.__init__(**{**self._params, **params})
        return self

    @property
    def _estimator_type(self) -> str:  # scikit-learn < 1.6 reads this attribute
        return "classifier" if self.is_classifier else "regressor"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags, InputTags, RegressorTags, Tags, TargetTags

        clf = self.is_classifier
        return Tags(estimator_type="classifier" if clf else "regressor",
                    target_tags=TargetTags(required=True, multi_output=not clf, single_output=True),
                    classifier_tags=ClassifierTags(multi_class=self.output == "softmax") if clf else None,
                    regressor_tags=None if clf else RegressorTags(),
                    input_tags=InputTags(two_d_array=True, three_d_array=self.input_shape is not None
                                         and len(self.input_shape) >= 2))

    # ------------------------------------------------------------------------ checkpoints
    def config(self) -> dict:
        """Constructor keyword arguments (JSON values), used by checkpoints."""
        raise NotImplementedError

    def save(self, path) -> None:
        """Write the model (see ``rtinfer.train.checkpoint``) to ``path`` atomically."""
        write_archive(path, *self.checkpoint_contents())

    def checkpoint_contents(self) -> tuple[dict, dict]:
        """(architecture dict, arrays) for ``archive.write_archive``."""
        if not self.built:
            raise ValueError(f"cannot save an unfitted {type(self).__name__}")
        pre = self.preprocessor
        if pre is not None and not pre.fitted:
            raise ValueError("cannot save a model whose preprocessor is not fitted")
        opt = self.optimizer_ if self.optimizer_ is not None and self.optimizer_.size == self.n_parameters else None
        arch = {"model": type(self).__name__, "config": self.config(), "output": self.output,
                "input_shape": list(self.input_shape), "layers": [layer.spec() for layer in self.layers],
                "preprocessor": None if pre is None else pre.config(),
                "history": None if self.history_ is None else self.history_.as_dict(),
                "optimizer": None if opt is None else {**opt.config(), "t": opt.t},
                "train_state": self.train_state_ if opt is not None else None}
        arrays = {"theta": self._theta}
        if self.classes_ is not None:
            arrays["classes"] = np.asarray(self.classes_)
        if pre is not None:
            arrays.update({f"pre.{key}": np.asarray(arr, dtype=np.float64) for key, arr in pre.state().items()})
        if opt is not None:
            arrays.update({f"opt.{key}": arr for key, arr in opt.state().items()})
        return arch, arrays

    def restore_checkpoint(self, arch: dict, arrays: dict, where: str = "checkpoint") -> None:
        """Set layers (if not built by the constructor), parameters, preprocessor, classes,
        history and optimizer state from ``checkpoint_contents`` output; CheckpointError if
        they do not fit this model."""
        specs = arch.get("layers")
        if not isinstance(specs, list) or not specs:
            raise CheckpointError(f"{where}: architecture has no layers")
        layers = []
        for i, spec in enumerate(specs):
            try:
                layers.append(layer_from_spec(spec))
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: layer {i} spec {spec!r} is invalid: {exc}") from None
        if not self.built:
            shape = arch.get("input_shape") or [specs[0].get("n_in")]  # version 1: a Dense first
            try:
                self._install(layers, shape)
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: layers do not chain: {exc}") from None
        elif [layer.spec() for layer in self.layers] != specs:
            raise CheckpointError(f"{where}: the stored layers do not match the model built from its config")
        theta = arrays.get("theta")
        if theta is None or theta.dtype != np.float64 or theta.shape != self._theta.shape:
            got = None if theta is None else (theta.dtype, theta.shape)
            raise CheckpointError(f"{where}: 'theta' must be float64 of shape {self._theta.shape}; got {got}")
        self._theta[...] = theta

        pre_cfg = arch.get("preprocessor")
        self.preprocessor = None
        if pre_cfg is not None:
            pre_cls = PREPROCESSORS.get(pre_cfg.get("type") if isinstance(pre_cfg, dict) else None)
            if pre_cls is None:
                raise CheckpointError(f"{where}: unknown preprocessor {pre_cfg!r}")
            pre = pre_cls(**{k: v for k, v in pre_cfg.items() if k != "type"})
            try:
                pre.set_state({k[4:]: v for k, v in arrays.items() if k.startswith("pre.")})
            except KeyError as exc:
                raise CheckpointError(f"{where}: preprocessor array {exc} missing") from None
            if pre.mean_.shape != (self.n_features_in_,):
                raise CheckpointError(f"{where}: preprocessor has {pre.mean_.shape} features; the model expects "
                                      f"{self.n_features_in_}")
            self.preprocessor = pre

        if self.is_classifier:
            classes = arrays.get("classes")
            if classes is None or classes.ndim != 1 or classes.dtype.kind not in "iufbU":
                raise CheckpointError(f"{where}: classifier checkpoint lacks a 1-D 'classes' array of labels")
            k = 2 if self.output == "sigmoid" else self.n_outputs_
            if len(classes) != k:
                raise CheckpointError(f"{where}: {len(classes)} classes for {k} outputs")
            self.classes_ = classes
        hist = arch.get("history")
        self.history_ = trainer.History(**hist) if isinstance(hist, dict) else None

        opt_cfg = arch.get("optimizer")
        self.optimizer_ = self.train_state_ = None
        if opt_cfg is not None:
            try:
                opt = optimizer_from_config({k: v for k, v in opt_cfg.items() if k != "t"})
                opt.set_state(opt_cfg.get("t"), {name: arrays[f"opt.{name}"] for name in opt.state_names},
                              self.n_parameters)
                state = arch.get("train_state")
                missing = {"seed", "batch_size", "shuffle", "validation_split", "loss", "rng"} - set(state)
                if missing:
                    raise ValueError(f"train_state lacks {sorted(missing)}")
                np.random.PCG64().state = state["rng"]  # validates the stored generator state
            except KeyError as exc:
                raise CheckpointError(f"{where}: optimizer array {exc} missing") from None
            except (TypeError, ValueError) as exc:
                raise CheckpointError(f"{where}: invalid optimizer state: {exc}") from None
            self.optimizer_, self.train_state_ = opt, state

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def _as_layer(item, i: int):
    if isinstance(item, dict):
        try:
            return layer_from_spec(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"layer {i} spec {item!r} is invalid: {exc}") from None
    if not hasattr(item, "forward_train"):
        raise ValueError(f"layer {i}: {item!r} is not a layer")
    return item


class Sequential(Model):
    """A model that applies ``layers`` in order to samples of ``input_shape``: an MLP with
    residual blocks, a CNN (``input_shape`` channels-first), anything the layers can chain.

        Sequential((64,), [Dense(64, 64), Activation("relu"),
                           Residual([Dense(64, 64), Activation("relu"), Dense(64, 64)]), Activation("relu"),
                           Dense(64, 10)], output="softmax", seed=0)

    ``layers`` are layer objects (or their ``spec()`` dicts); the last must give the logits, a
    vector per sample. Weights are initialized from ``seed`` by ``init_layers`` (init "auto",
    "he" or "glorot")."""

    @keeps_params
    def __init__(self, input_shape, layers, output: str = "softmax", l2: float = 0.0, preprocess=None,
                 seed: int = 0, init: str = "auto"):
        super().__init__(output=output, l2=l2, preprocess=preprocess, seed=seed)
        try:
            shape = tuple(int(d) for d in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape must be a tuple of ints; got {input_shape!r}") from None
        if not shape or any(d < 1 for d in shape):
            raise ValueError(f"input_shape must be non-empty with positive dims; got {input_shape!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(map(repr, INITS))}; got {init!r}")
        self.init = init
        try:
            items = list(layers)
        except TypeError:
            raise ValueError(f"layers must be a list of layers; got {layers!r}") from None
        built = [_as_layer(item, i) for i, item in enumerate(items)]
        if not built:
            raise ValueError(f"{type(self).__name__} needs at least one layer")
        self._install(built, shape)
        if output == "sigmoid" and self.n_outputs_ != 1:
            raise ValueError(f"output 'sigmoid' needs 1 output unit; the last layer gives {self.n_outputs_}")
        if output == "softmax" and self.n_outputs_ < 2:
            raise ValueError(f"output 'softmax' needs >= 2 output units; the last layer gives {self.n_outputs_}")
        init_layers(self.layers, np.random.default_rng(self.seed), init)

    def config(self) -> dict:
        return {"input_shape": list(self.input_shape), "layers": [layer.spec() for layer in self.layers],
                "output": self.output, "l2": self.l2, "seed": self.seed, "init": self.init}

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}({self.input_shape}, [{inner}], output={self.output!r})"
