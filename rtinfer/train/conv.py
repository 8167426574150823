"""Convolution, pooling, batch-norm and flatten layers, channels-first, in NumPy float64.

Layouts follow PyTorch / ONNX: a 1-D batch is (N, C, L), a 2-D batch (N, C, H, W).
Every layer computes on a 2-D core: a 1-D tensor is viewed as H = 1, so Conv1D with kernel k is
Conv2D with kernel (1, k) and the same code (and gradients) serve both.

Layers (the interface of ``rtinfer.train.layers``: ``forward``, ``forward_train``,
``backward(dy, need_dx)``, ``spec``, ``kind``; plus ``build(in_shape) -> out_shape`` with
per-sample shapes, called by the model):

- ``Conv1D(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1)``
  and ``Conv2D(...)``: W (O, C/groups, k) or (O, C/groups, kh, kw), b (O,);
  y[n, o, i, j] = b[o] + sum_{c, p, q} W[o, c, p, q] * xpad[n, g*Cg + c, i*sh + p*dh, j*sw + q*dw]
  with g = o // (O / groups), Cg = C / groups (depthwise: groups = C). ``padding`` is an int,
  one int per spatial dim (symmetric), one (begin, end) pair per dim (for 1-D also a bare
  (begin, end)), "valid" or "same"
  (stride 1; the odd extra element goes at the end, as PyTorch).
- ``MaxPool1D/2D(kernel_size, stride=None, padding=0)``: max over the window (padding is -inf;
  each pad must be smaller than the kernel). The gradient goes to the first maximum.
- ``AvgPool1D/2D(kernel_size, stride=None, padding=0, count_include_pad=False)``: the mean over
  the window; padded zeros count in the divisor only with ``count_include_pad`` (ONNX default off).
- ``GlobalAvgPool()``: (N, C, *spatial) -> (N, C), the mean over all spatial positions.
- ``Flatten()``: (N, *shape) -> (N, prod(shape)), C-order (channel-major), as ONNX Flatten.
- ``BatchNorm(num_features, eps=1e-5, momentum=0.1)``: per channel (axis 1) of (N, C, ...) or (N, C).
  Training mode normalizes with the batch mean and biased variance and updates
  running = (1 - momentum) * running + momentum * batch (the unbiased variance, as PyTorch);
  inference (``forward``) uses the running averages: y = gamma * (x - mean) / sqrt(var + eps) + beta.

Parameters are declared by ``param_specs()`` as (name, shape, group) with group "weight"
(L2-decayed), "bias" (trained, not decayed) or "state" (BatchNorm running averages: stored with
the parameters so checkpoints and early stopping keep them, but never given a gradient);
the model binds them into its flat vector with ``bind_params``. ``rtinfer.train.specs`` rebuilds
every layer from its ``spec()``.
"""

from __future__ import annotations

import math

import numpy as np

CONV_KINDS = ("conv", "maxpool", "avgpool", "global_avgpool", "flatten", "batchnorm")


# --------------------------------------------------------------------------------- arguments
def _ints(value, nd: int, name: str, minimum: int = 1) -> tuple[int, ...]:
    """An int or a sequence of ``nd`` ints, each >= minimum."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        vals = (int(value),) * nd
    else:
        try:
            vals = tuple(value)
        except TypeError:
            raise ValueError(f"{name} must be an int or {nd} ints; got {value!r}") from None
        if len(vals) != nd or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals):
            raise ValueError(f"{name} must be an int or {nd} ints; got {value!r}")
        vals = tuple(int(v) for v in vals)
    if any(v < minimum for v in vals):
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}")
    return vals


def _pads(padding, nd: int, kernel, dilation, stride) -> tuple[tuple[int, int], ...]:
    """Normalize ``padding`` to one (begin, end) pair per spatial dim."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return ((0, 0),) * nd
        if mode == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"padding='same' needs stride 1; got stride {stride}")
            pairs = []
            for k, d in zip(kernel, dilation):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))
            return tuple(pairs)
        raise ValueError(f"padding must be an int, ints, (begin, end) pairs, 'valid' or 'same'; got {padding!r}")
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        p = int(padding)
        if p < 0:
            raise ValueError(f"padding must be >= 0; got {padding!r}")
        return ((p, p),) * nd
    try:
        items = list(padding)
    except TypeError:
        raise ValueError(f"padding must be an int, ints, (begin, end) pairs, 'valid' or 'same'; got {padding!r}") from None
    if nd == 1 and len(items) == 2 and all(isinstance(v, (int, np.integer)) for v in items):
        items = [tuple(items)]  # 1-D: (begin, end)
    if len(items) != nd:
        raise ValueError(f"padding needs {nd} entries (one per spatial dim); got {padding!r}")
    pairs = []
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            pair = (int(item), int(item))
        else:
            try:
                b, e = item
                pair = (int(b), int(e))
            except (TypeError, ValueError):
                raise ValueError(f"padding entries must be ints or (begin, end) pairs; got {padding!r}") from None
        if min(pair) < 0:
            raise ValueError(f"padding must be >= 0; got {padding!r}")
        pairs.append(pair)
    return tuple(pairs)


def _out_len(n: int, k: int, s: int, d: int, pb: int, pe: int) -> int:
    return (n + pb + pe - d * (k - 1) - 1) // s + 1


# ------------------------------------------------------------------------------ 2-D core
class _Geometry:
    """Window geometry on the 2-D core: kernel (kh, kw), stride, dilation, pads (t, b, l, r)."""

    def __init__(self, nd, kernel, stride, dilation, pads):
        self.nd = nd
        pad2 = ((0, 0),) + tuple(pads) if nd == 1 else tuple(pads)
        k2 = (1,) + tuple(kernel) if nd == 1 else tuple(kernel)
        s2 = (1,) + tuple(stride) if nd == 1 else tuple(stride)
        d2 = (1,) + tuple(dilation) if nd == 1 else tuple(dilation)
        self.kh, self.kw = k2
        self.sh, self.sw = s2
        self.dh, self.dw = d2
        (self.pt, self.pb), (self.pl, self.pr) = pad2
        self.in_hw = None
        self.out_hw = None

    def build(self, spatial: tuple[int, ...], where: str) -> tuple[int, ...]:
        """Per-sample spatial shape in -> out (1 or 2 dims); raises ValueError if empty."""
        h, w = (1,) + tuple(spatial) if self.nd == 1 else tuple(spatial)
        oh = _out_len(h, self.kh, self.sh, self.dh, self.pt, self.pb)
        ow = _out_len(w, self.kw, self.sw, self.dw, self.pl, self.pr)
        if oh < 1 or ow < 1:
            raise ValueError(f"{where}: the window (kernel {self.kernel}, dilation {self.dilation}) does not fit "
                             f"the padded input {tuple(spatial)}; output would be empty")
        self.in_hw, self.out_hw = (h, w), (oh, ow)
        return (ow,) if self.nd == 1 else (oh, ow)

    @property
    def kernel(self):
        return (self.kw,) if self.nd == 1 else (self.kh, self.kw)

    @property
    def dilation(self):
        return (self.dw,) if self.nd == 1 else (self.dh, self.dw)

    def as4d(self, x: np.ndarray) -> np.ndarray:
        return x[:, :, None, :] if self.nd == 1 else x

    def pad(self, x4: np.ndarray, fill: float) -> np.ndarray:
        if self.pt == self.pb == self.pl == self.pr == 0:
            return x4
        return np.pad(x4, ((0, 0), (0, 0), (self.pt, self.pb), (self.pl, self.pr)), constant_values=fill)

    def _slices(self, p: int, q: int):
        oh, ow = self.out_hw
        return (slice(p * self.dh, p * self.dh + self.sh * (oh - 1) + 1, self.sh),
                slice(q * self.dw, q * self.dw + self.sw * (ow - 1) + 1, self.sw))

    def im2col(self, xp: np.ndarray) -> np.ndarray:
        """xp (N, C, Hp, Wp) padded -> cols (N, C, kh, kw, oh, ow)."""
        n, c = xp.shape[:2]
        cols = np.empty((n, c, self.kh, self.kw) + self.out_hw)
        for p in range(self.kh):
            for q in range(self.kw):
                sh, sw = self._slices(p, q)
                cols[:, :, p, q] = xp[:, :, sh, sw]
        return cols

    def col2im(self, dcols: np.ndarray) -> np.ndarray:
        """The adjoint of pad + im2col: dcols (N, C, kh, kw, oh, ow) -> dx (N, C, H, W)."""
        n, c = dcols.shape[:2]
        h, w = self.in_hw
        dxp = np.zeros((n, c, h + self.pt + self.pb, w + self.pl + self.pr))
        for p in range(self.kh):
            for q in range(self.kw):
                sh, sw = self._slices(p, q)
                dxp[:, :, sh, sw] += dcols[:, :, p, q]
        return dxp[:, :, self.pt:self.pt + h, self.pl:self.pl + w]

    def pads_spec(self) -> list:
        return [[self.pl, self.pr]] if self.nd == 1 else [[self.pt, self.pb], [self.pl, self.pr]]


def _check_input(layer, x: np.ndarray) -> None:
    """Build a standalone layer on its first input; afterwards the sample shape must match."""
    if layer.in_shape is None:
        layer.build(tuple(x.shape[1:]))
    elif tuple(x.shape[1:]) != tuple(layer.in_shape):
        raise ValueError(f"{layer!r}: expected input (N, {', '.join(map(str, layer.in_shape))}), got {x.shape}")


# ------------------------------------------------------------------------------ convolution
class _Conv:
    kind = "conv"
    nd = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1):
        nd = self.nd
        self.in_channels = _ints(in_channels, 1, "in_channels")[0]
        self.out_channels = _ints(out_channels, 1, "out_channels")[0]
        self.groups = _ints(groups, 1, "groups")[0]
        if self.in_channels % self.groups or self.out_channels % self.groups:
            raise ValueError(f"groups={self.groups} must divide in_channels={self.in_channels} and "
                             f"out_channels={self.out_channels}")
        kernel = _ints(kernel_size, nd, "kernel_size")
        stride = _ints(stride, nd, "stride")
        dilation = _ints(dilation, nd, "dilation")
        pads = _pads(padding, nd, kernel, dilation, stride)
        self.geo = _Geometry(nd, kernel, stride, dilation, pads)
        self.kernel_size, self.stride, self.dilation = kernel, stride, dilation
        self.pads = pads  # ((begin, end),) per spatial dim
        cg = self.in_channels // self.groups
        self.w_shape = (self.out_channels, cg) + kernel
        self._W = np.zeros(self.w_shape)
        self._b = np.zeros(self.out_channels)
        self._dW = np.zeros(self.w_shape)
        self._db = np.zeros(self.out_channels)
        self.in_shape = self.out_shape = None
        self._saved_cols = None

    # parameters ------------------------------------------------------------------------------
    @property
    def W(self) -> np.ndarray:
        return self._W

    @W.setter
    def W(self, value) -> None:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != self.w_shape:
            raise ValueError(f"{type(self).__name__} W must have shape {self.w_shape}; got {value.shape}")
        self._W[...] = value

    @property
    def b(self) -> np.ndarray:
        return self._b

    @b.setter
    def b(self, value) -> None:
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (self.out_channels,):
            raise ValueError(f"{type(self).__name__} b must have shape ({self.out_channels},); got {value.shape}")
        self._b[...] = value

    @property
    def dW(self):
        return self._dW

    @property
    def db(self):
        return self._db

    @property
    def fan_in(self) -> int:
        return self.w_shape[1] * math.prod(self.kernel_size)

    @property
    def fan_out(self) -> int:
        return self.out_channels // self.groups * math.prod(self.kernel_size)

    def param_specs(self):
        return [("W", self.w_shape, "weight"), ("b", (self.out_channels,), "bias")]

    def bind_params(self, views: dict) -> None:
        """views: name -> (value view, gradient view) of the model's flat vectors; values kept."""
        views["W"][0][...] = self._W
        views["b"][0][...] = self._b
        self._W, self._dW = views["W"]
        self._b, self._db = views["b"]

    def trainable_params(self) -> dict:
        return {"W": self._W, "b": self._b}

    # shapes ----------------------------------------------------------------------------------
    def build(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        where = repr(self)
        if len(in_shape) != 1 + self.nd or in_shape[0] != self.in_channels:
            raise ValueError(f"{where}: expects per-sample input ({self.in_channels}, {'L' if self.nd == 1 else 'H, W'}); "
                             f"got {tuple(in_shape)}")
        spatial = self.geo.build(tuple(in_shape[1:]), where)
        self.in_shape, self.out_shape = tuple(in_shape), (self.out_channels,) + spatial
        return self.out_shape

    # compute ---------------------------------------------------------------------------------
    def _im2col(self, x: np.ndarray) -> np.ndarray:
        """x (N, C, *spatial) -> cols (N, G, Cg*kh*kw, oh*ow)."""
        _check_input(self, x)
        g = self.geo
        cols = g.im2col(g.pad(g.as4d(np.asarray(x, dtype=np.float64)), 0.0))
        n = cols.shape[0]
        return cols.reshape(n, self.groups, -1, g.out_hw[0] * g.out_hw[1])

    def _apply(self, cols: np.ndarray) -> np.ndarray:
        n = cols.shape[0]
        wg = self._W.reshape(self.groups, self.out_channels // self.groups, -1)
        y = np.matmul(wg, cols).reshape((n, self.out_channels) + self.out_shape[1:])
        y += self._b.reshape((1, -1) + (1,) * self.nd)
        return y

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._apply(self._im2col(x))

    def forward_train(self, x: np.ndarray) -> np.ndarray:
        self._saved_cols = self._im2col(x)
        return self._apply(self._saved_cols)

    def backward(self, dy: np.ndarray, need_dx: bool = True):
        cols, g = self._saved_cols, self.geo
        n = dy.shape[0]
        og = self.out_channels // self.groups
        dyg = dy.reshape(n, self.groups, og, -1)  # (N, G, Og, P)
        # dW[g] = sum_n dyg[n, g] @ cols[n, g]^T: N small products (one long (Og, N*P) @ (N*P, K)
        # product is no faster, and threaded BLAS on it stalls on a busy machine)
        self._dW[...] = np.matmul(dyg, cols.transpose(0, 1, 3, 2)).sum(axis=0).reshape(self.w_shape)
        self._db[...] = dy.reshape(n, self.out_channels, -1).sum(axis=(0, 2))
        if not need_dx:
            return None
        wg = self._W.reshape(self.groups, og, -1)
        dcols = np.matmul(wg.transpose(0, 2, 1), dyg)  # (N, G, Cg*kh*kw, P)
        dcols = dcols.reshape((n, self.in_channels, g.kh, g.kw) + g.out_hw)
        dx = g.col2im(dcols)
        return dx[:, :, 0, :] if self.nd == 1 else dx

    def spec(self) -> dict:
        return {"type": f"conv{self.nd}d", "in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": [list(p) for p in self.pads], "dilation": list(self.dilation), "groups": self.groups}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.pads}, dilation={self.dilation}, groups={self.groups})")


class Conv1D(_Conv):
    """1-D convolution on (N, C, L); W (O, C/groups, k), b (O,)."""
    nd = 1


class Conv2D(_Conv):
    """2-D convolution on (N, C, H, W); W (O, C/groups, kh, kw), b (O,)."""
    nd = 2


# ------------------------------------------------------------------------------ pooling
class _Pool:
    nd = 2
    kind = "pool"

    def __init__(self, kernel_size, stride=None, padding=0):
        nd = self.nd
        kernel = _ints(kernel_size, nd, "kernel_size")
        stride = kernel if stride is None else _ints(stride, nd, "stride")
        pads = _pads(padding, nd, kernel, (1,) * nd, stride)
        for k, (b, e) in zip(kernel, pads):
            if b >= k or e >= k:
                raise ValueError(f"pooling pads {pads} must be smaller than the kernel {kernel}")
        self.kernel_size, self.stride, self.pads = kernel, stride, pads
        self.geo = _Geometry(nd, kernel, stride, (1,) * nd, pads)
        self.in_shape = self.out_shape = None

    def build(self, in_shape):
        if len(in_shape) != 1 + self.nd:
            raise ValueError(f"{self!r}: expects per-sample input (C, {'L' if self.nd == 1 else 'H, W'}); got {tuple(in_shape)}")
        spatial = self.geo.build(tuple(in_shape[1:]), repr(self))
        self.in_shape, self.out_shape = tuple(in_shape), (in_shape[0],) + spatial
        return self.out_shape

    def _windows(self, x: np.ndarray, fill: float) -> np.ndarray:
        """x (N, C, *spatial) -> (N, C, kh*kw, oh, ow)."""
        _check_input(self, x)
        g = self.geo
        cols = g.im2col(g.pad(g.as4d(np.asarray(x, dtype=np.float64)), fill))
        return cols.reshape(cols.shape[:2] + (g.kh * g.kw,) + g.out_hw)

    def _out(self, y4: np.ndarray) -> np.ndarray:
        return y4[:, :, 0, :] if self.nd == 1 else y4

    def _dx(self, dcols: np.ndarray) -> np.ndarray:
        g = self.geo
        dx = g.col2im(dcols.reshape(dcols.shape[:2] + (g.kh, g.kw) + g.out_hw))
        return dx[:, :, 0, :] if self.nd == 1 else dx

    def _dy4(self, dy):
        return dy[:, :, None, :] if self.nd == 1 else dy

    def param_specs(self):
        return []

    def bind_params(self, views):
        pass

    def trainable_params(self):
        return {}

    def _base_spec(self, name):
        return {"type": name, "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": [list(p) for p in self.pads]}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.pads})"


class _MaxPool(_Pool):
    kind = "maxpool"

    def forward(self, x):
        return self._out(self._windows(x, -np.inf).max(axis=2))

    def forward_train(self, x):
        win = self._windows(x, -np.inf)
        self._arg = np.argmax(win, axis=2)[:, :, None]  # first maximum
        self._win_shape = win.shape
        return self._out(np.take_along_axis(win, self._arg, axis=2)[:, :, 0])

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        dcols = np.zeros(self._win_shape)
        np.put_along_axis(dcols, self._arg, self._dy4(dy)[:, :, None], axis=2)
        return self._dx(dcols)

    def spec(self):
        return self._base_spec(f"maxpool{self.nd}d")


class _AvgPool(_Pool):
    kind = "avgpool"

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad: bool = False):
        super().__init__(kernel_size, stride, padding)
        self.count_include_pad = bool(count_include_pad)
        self._count = None

    def build(self, in_shape):
        out = super().build(in_shape)
        g = self.geo
        if self.count_include_pad:
            self._count = np.full(g.out_hw, float(g.kh * g.kw))
        else:  # real (unpadded) elements per window
            ones = np.ones((1, 1) + g.in_hw)
            self._count = g.im2col(g.pad(ones, 0.0)).reshape((g.kh * g.kw,) + g.out_hw).sum(axis=0)
        return out

    def forward(self, x):
        return self._out(self._windows(x, 0.0).sum(axis=2) / self._count)

    forward_train = forward

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        g = self.geo
        share = self._dy4(dy) / self._count  # (N, C, oh, ow)
        dcols = np.broadcast_to(share[:, :, None], share.shape[:2] + (g.kh * g.kw,) + g.out_hw)
        return self._dx(np.ascontiguousarray(dcols))

    def spec(self):
        d = self._base_spec(f"avgpool{self.nd}d")
        d["count_include_pad"] = self.count_include_pad
        return d

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", count_include_pad={self.count_include_pad})"


class MaxPool1D(_MaxPool):
    """Max pooling on (N, C, L)."""
    nd = 1


class MaxPool2D(_MaxPool):
    """Max pooling on (N, C, H, W)."""
    nd = 2


class AvgPool1D(_AvgPool):
    """Average pooling on (N, C, L)."""
    nd = 1


class AvgPool2D(_AvgPool):
    """Average pooling on (N, C, H, W)."""
    nd = 2


class GlobalAvgPool:
    """(N, C, *spatial) -> (N, C): the mean over every spatial position."""

    kind = "global_avgpool"

    def __init__(self):
        self.in_shape = self.out_shape = None

    def build(self, in_shape):
        if len(in_shape) < 2:
            raise ValueError(f"GlobalAvgPool expects per-sample input (C, *spatial); got {tuple(in_shape)}")
        self.in_shape, self.out_shape = tuple(in_shape), (in_shape[0],)
        return self.out_shape

    def param_specs(self):
        return []

    def bind_params(self, views):
        pass

    def trainable_params(self):
        return {}

    def forward(self, x):
        _check_input(self, x)
        return x.reshape(x.shape[0], x.shape[1], -1).mean(axis=2)

    forward_train = forward

    def backward(self, dy, need_dx=True):
        if not need_dx:
            return None
        spatial = self.in_shape[1:]
        share = dy / math.prod(spatial)
        return np.ascontiguousarray(np.broadcast_to(share.reshape(share.shape + (1,) * len(spatial)),
                                                    (dy.shape[0],) + self.in_shape))

    def spec(self):
        return {"type": "global_avgpool"}

    def __repr__(self):
        return "GlobalAvgPool()"


class Flatten:
    """(N, *shape) -> (N, prod(shape)) in C order."""

    kind = "flatten"

    def __init__(self):
        self.in_shape = self.out_shape = None

    def build(self, in_shape):
        self.in_shape, self.out_shape = tuple(in_shape), (math.prod(in_shape),)
        return self.out_shape

    def param_specs(self):
        return []

    def bind_params(self, views):
        pass

    def trainable_params(self):
        return {}

    def forward(self, x):
        _check_input(self, x)
        return x.reshape(x.shape[0], -1)

    forward_train = forward

    def backward(self, dy, need_dx=True):
        return dy.reshape((dy.shape[0],) + self.in_shape) if need_dx else None

    def spec(self):
        return {"type": "flatten"}

    def __repr__(self):
        return "Flatten()"


class BatchNorm:
    """Batch normalization over axis 1 of (N, C, *spatial) or (N, C); see the module doc."""

    kind = "batchnorm"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        self.num_features = _ints(num_features, 1, "num_features")[0]
        self.eps = float(eps)
        self.momentum = float(momentum)
        if not (np.isfinite(self.eps) and self.eps > 0):
            raise ValueError(f"BatchNorm eps must be > 0; got {eps!r}")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"BatchNorm momentum must be in [0, 1]; got {momentum!r}")
        c = self.num_features
        self.gamma, self.beta = np.ones(c), np.zeros(c)
        self.dgamma, self.dbeta = np.zeros(c), np.zeros(c)
        self.running_mean, self.running_var = np.zeros(c), np.ones(c)
        self.in_shape = self.out_shape = None

    def build(self, in_shape):
        if len(in_shape) < 1 or in_shape[0] != self.num_features:
            raise ValueError(f"{self!r}: expects per-sample input ({self.num_features}, ...); got {tuple(in_shape)}")
        self.in_shape = self.out_shape = tuple(in_shape)
        return self.out_shape

    def param_specs(self):
        c = (self.num_features,)
        return [("gamma", c, "bias"), ("beta", c, "bias"), ("running_mean", c, "state"), ("running_var", c, "state")]

    def bind_params(self, views: dict) -> None:
        for name, grad_name in (("gamma", "dgamma"), ("beta", "dbeta")):
            value, grad = views[name]
            value[...] = getattr(self, name)
            setattr(self, name, value)
            setattr(self, grad_name, grad)
        for name in ("running_mean", "running_var"):
            value, _ = views[name]  # its gradient slot stays zero
            value[...] = getattr(self, name)
            setattr(self, name, value)

    def trainable_params(self) -> dict:
        return {"gamma": self.gamma, "beta": self.beta}

    def _bshape(self, x):
        return (1, self.num_features) + (1,) * (x.ndim - 2)

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """Inference as y = x * s + t per channel: s = gamma / sqrt(var + eps), t = beta - mean * s."""
        s = self.gamma / np.sqrt(self.running_var + self.eps)
        return s, self.beta - self.running_mean * s

    def forward(self, x):
        _check_input(self, x)
        s, t = self.scale_shift()
        return x * s.reshape(self._bshape(x)) + t.reshape(self._bshape(x))

    def forward_train(self, x):
        _check_input(self, x)
        axes = (0,) + tuple(range(2, x.ndim))
        count = x.size // self.num_features
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        inv_std = 1.0 / np.sqrt(var + self.eps)
        bs = self._bshape(x)
        xhat = (x - mean.reshape(bs)) * inv_std.reshape(bs)
        self._xhat, self._inv_std, self._axes, self._count = xhat, inv_std, axes, count
        m = self.momentum
        self.running_mean[...] = (1.0 - m) * self.running_mean + m * mean
        unbiased = var * count / (count - 1) if count > 1 else var
        self.running_var[...] = (1.0 - m) * self.running_var + m * unbiased
        return xhat * self.gamma.reshape(bs) + self.beta.reshape(bs)

    def backward(self, dy, need_dx=True):
        xhat, axes, bs = self._xhat, self._axes, self._bshape(dy)
        self.dgamma[...] = (dy * xhat).sum(axis=axes)
        self.dbeta[...] = dy.sum(axis=axes)
        if not need_dx:
            return None
        dxhat = dy * self.gamma.reshape(bs)
        mean_dxhat = dxhat.mean(axis=axes).reshape(bs)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes).reshape(bs)
        return (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * self._inv_std.reshape(bs)

    def spec(self):
        return {"type": "batchnorm", "num_features": self.num_features, "eps": self.eps, "momentum": self.momentum}

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum})"
