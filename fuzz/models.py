"""Small models the fuzzers start from, and a generator of hostile synthetic graphs.

``base_models()``: valid FrozenModels covering every op family of format 2: a fp32 chain
(AFFINE, DENSE, SOFTMAX, meta), an int8 chain (QUANTIZE, QDENSE, QLUT, DEQUANTIZE, ARGMAX with
an int64 output), a residual graph (BINARY of two runtime tensors with a fused activation), a
two-branch graph with two outputs (CONCAT, SLICE, BINARY MUL), a fp32 CNN (CONV, MAXPOOL,
AVGPOOL, ACT, GLOBAL_AVGPOOL, RESHAPE), an int8 1-D CNN graph (QCONV, QMAXPOOL, QAVGPOOL, QSLICE,
QCONCAT, QBINARY) and the table ops (GATHER, LAYERNORM, QGATHER) with MATMUL, DYNQUANT (both
modes, rescaled by a BINARY MUL) and a CONST output. Each is a few KB as an .rtm file.

``synth(rnd)``: a random graph of 1..7 layers over every op, with shapes and attributes that
are mostly consistent (so the model reaches the planner and the kernels) and, in hostile
draws, extreme: window geometry of 2^16..2^63, element counts of 2^20..2^28 in a file of a few
hundred bytes (broadcasts of (m, 1) by (1, k), paddings, concatenations of thousands of inputs),
axis factorizations that do not multiply out, zero/denormal/infinite scales, int64 outputs on
non-ARGMAX tensors, unused layers. It is written with ``raw_bytes``, which serializes a model
without FrozenModel's validation, so what only the reader or the planner would refuse reaches
them.
"""

from __future__ import annotations

import math
import random

import numpy as np

from rtinfer import quant
from rtinfer._testmodels import fp32_mlp, int8_mlp, residual_mlp, two_branch
from rtinfer.frozen import BufferBuilder, FrozenModel, Layer, Output
from rtinfer.ops import CONV_GEOMETRY_ATTRS, Act, Bin, Op
from rtinfer.reference_conv import geometry_attrs, window_out_shape

# Extreme integer attribute values: the window geometry of issue 16 (2^28..2^31), int32 and
# int64 edges, zero and negative.
EXTREME_INTS = (0, -1, 2, 3, 1 << 16, 1 << 24, 1 << 28, 1 << 29, 1 << 30, (1 << 31) - 1, 1 << 31, (1 << 32) - 1,
                1 << 32, 1 << 40, (1 << 63) - 1, -(1 << 31), -(1 << 63))
EXTREME_FLOATS = (0.0, -0.0, -1.0, 5e-324, 1e-45, 1e-30, 1e30, 3.4e38, 1e308, math.inf, -math.inf)
HUGE_COUNTS = (1 << 20, 1 << 22, 1 << 24, 1 << 25, 1 << 26, 1 << 28)


class RawModel:
    """What rtinfer.rtm_layout.to_bytes reads from a FrozenModel, without its validation."""

    def __init__(self, layers, buffers, input_shape, outputs, meta=None):
        self.layers = tuple(layers)
        self.buffers = buffers
        self.input_shape = tuple(input_shape)
        self.outputs = tuple(outputs)
        self.output_shape = self.outputs[0].shape
        self.output_dtype = self.outputs[0].dtype
        self.meta = dict(meta or {})


def raw_bytes(model) -> bytes:
    from rtinfer.rtm_layout import to_bytes
    return to_bytes(model)


# ------------------------------------------------------------------------------ base models

def _cnn_fp32(seed=0) -> FrozenModel:
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()
    g1 = dict(geometry_attrs((3, 3), pads=((1, 1), (1, 1))), group=1)
    W = (0.3 * rng.standard_normal((3, 2, 3, 3))).astype(np.float32)
    b = (0.1 * rng.standard_normal(3)).astype(np.float32)
    s1 = window_out_shape((2, 6, 5), g1, 3)
    pool = geometry_attrs((2, 2), stride=(2, 2))
    s2 = window_out_shape(s1, pool)
    avg = dict(geometry_attrs((2, 2), pads=((1, 0), (0, 1))), count_include_pad=1)
    s3 = window_out_shape(s2, avg)
    Wd = (0.5 * rng.standard_normal((3, 2))).astype(np.float32)
    layers = (
        Layer(Op.CONV, (2, 6, 5), s1, Act.RELU, {"W": bb.add(W), "b": bb.add(b)}, g1, name="conv"),
        Layer(Op.MAXPOOL, s1, s2, attrs=pool, name="max"),
        Layer(Op.AVGPOOL, s2, s3, attrs=avg, name="avg"),
        Layer(Op.ACT, s3, s3, Act.HARD_SWISH, name="act"),
        Layer(Op.GLOBAL_AVGPOOL, s3, (3, 1, 1), name="gap"),
        Layer(Op.RESHAPE, (3, 1, 1), (3,), name="flat"),
        Layer(Op.DENSE, (3,), (2,), Act.TANH, {"W": bb.add(Wd), "b": bb.add(np.zeros(2, np.float32))}, name="fc"),
    )
    return FrozenModel(layers, bb.finish(), (2, 6, 5), (2,))


def _cnn_int8(seed=0) -> FrozenModel:
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()
    xs, xz = 0.05, -3
    W = rng.integers(-60, 60, size=(3, 2, 1, 3)).astype(np.int8)
    w_scale = np.full(3, 0.01, np.float32)
    bq = rng.integers(-50, 50, size=3).astype(np.int32)
    gc = dict(geometry_attrs((1, 3), pads=((0, 0), (1, 1))), group=1)
    s1 = window_out_shape((2, 8), gc, 3)
    q = {"x_scale": xs, "x_zp": xz, "y_scale": 0.04, "y_zp": 2, "qmin": -128, "qmax": 127}
    pm = geometry_attrs((1, 2), stride=(1, 2))
    s2 = window_out_shape(s1, pm)
    pa = dict(geometry_attrs((1, 2)), count_include_pad=0)
    s3 = window_out_shape(s2, pa)
    same = {"y_scale": 0.04, "y_zp": 2}
    layers = (
        Layer(Op.QUANTIZE, (2, 8), (2, 8), attrs={"y_scale": xs, "y_zp": xz}, name="q"),                 # t1
        Layer(Op.QCONV, (2, 8), s1, tensors={"W": bb.add(W), "b": bb.add(bq), "w_scale": bb.add(w_scale)},
              attrs=dict(gc, **q), name="qconv"),                                                        # t2
        Layer(Op.QMAXPOOL, s1, s2, attrs=dict(pm, x_scale=0.04, x_zp=2), name="qmax"),                   # t3
        Layer(Op.QAVGPOOL, s2, s3, attrs=dict(pa, x_scale=0.04, x_zp=2, y_scale=0.04, y_zp=2), name="qavg"),  # t4
        Layer(Op.QSLICE, s3, (3, 2), attrs=dict(axis=1, start=0, step=1, **same), name="qslice"),         # t5
        Layer(Op.QCONCAT, (3, 2), (6, 2), attrs=dict(axis=0, **same), name="qcat", inputs=(5, 5)),       # t6
        Layer(Op.QBINARY, (6, 2), (6, 2), attrs={"fn": int(Bin.ADD), "a_scale": 0.04, "a_zp": 2, "b_scale": 0.04,
                                                 "b_zp": 2, "y_scale": 0.08, "y_zp": 0, "qmin": -128, "qmax": 127},
              name="qadd", inputs=(6, 6)),                                                               # t7
        Layer(Op.DEQUANTIZE, (6, 2), (6, 2), attrs={"x_scale": 0.08, "x_zp": 0}, name="dq", inputs=(7,)),  # t8
        Layer(Op.LOG_SOFTMAX, (6, 2), (6, 2), attrs={"outer": 6, "axis_len": 2, "inner": 1}, name="lsm"),
    )
    return FrozenModel(layers, bb.finish(), (2, 8), (6, 2))


def _table_ops(seed=0) -> FrozenModel:
    """GATHER (a transpose with a padded column), LAYERNORM, QGATHER between QUANTIZE and
    DEQUANTIZE (the table ops of the ONNX importer: Transpose, Pad, Resize, LayerNorm...), a
    MATMUL of two runtime tensors, DYNQUANT's codes times its scale (onnxruntime's
    quantize_dynamic) and a CONST output of integers (int64, as ONNX Shape)."""
    rng = np.random.default_rng(seed)
    bb = BufferBuilder()
    idx = np.arange(12, dtype=np.int32).reshape(3, 4).T.reshape(-1)        # (3, 4) -> (4, 3)
    idx = np.concatenate([idx.reshape(4, 3), np.full((4, 1), -1, np.int32)], axis=1).reshape(-1)  # pad to (4, 4)
    rev = np.arange(16, dtype=np.int32)[::-1].copy()
    layers = (
        Layer(Op.GATHER, (3, 4), (4, 4), tensors={"index": bb.add(idx)}, attrs={"fill": -1.5}, name="gather"),
        Layer(Op.LAYERNORM, (4, 4), (4, 4),
              tensors={"scale": bb.add(rng.standard_normal(4).astype(np.float32)),
                       "bias": bb.add(rng.standard_normal(4).astype(np.float32))},
              attrs={"outer": 4, "axis_len": 4, "epsilon": 1e-5}, name="ln"),
        Layer(Op.QUANTIZE, (4, 4), (4, 4), attrs={"y_scale": 0.03, "y_zp": 1}, name="q"),
        Layer(Op.QGATHER, (4, 4), (4, 4), tensors={"index": bb.add(rev)}, attrs={"fill": 1, "y_scale": 0.03,
                                                                              "y_zp": 1}, name="qgather"),
        Layer(Op.DEQUANTIZE, (4, 4), (4, 4), attrs={"x_scale": 0.03, "x_zp": 1}, name="dq"),          # t5
        Layer(Op.MATMUL, (4, 4), (4, 4), attrs={"groups": 1, "m": 4, "k": 4, "n": 4, "a_groups": 1, "b_groups": 1},
              name="matmul", inputs=(5, 2)),                                                             # t6
        Layer(Op.CONST, (3, 4), (2,), tensors={"value": bb.add(np.array([3.0, -7.0], np.float32))},
              name="shape", inputs=(0,)),                                                                # t7
        Layer(Op.DYNQUANT, (4, 4), (4, 4), attrs={"mode": 0}, name="dq.q", inputs=(6,)),               # t8
        Layer(Op.DYNQUANT, (4, 4), (1,), attrs={"mode": 1}, name="dq.scale", inputs=(6,)),             # t9
        Layer(Op.RESHAPE, (1,), (1, 1), name="dq.view", inputs=(9,)),                                  # t10
        Layer(Op.BINARY, (4, 4), (4, 4), attrs={"fn": int(Bin.MUL)}, name="rescale", inputs=(8, 10)),  # t11
    )
    return FrozenModel(layers, bb.finish(), (3, 4), outputs=(Output(11, (4, 4), "float32"), Output(7, (2,), "int64")))


def base_models() -> list:
    """The valid models every structural mutation starts from (see the module doc)."""
    a = fp32_mlp([5, 7, 3], acts=[Act.LEAKY_RELU, Act.IDENTITY], head="softmax", affine_in=True,
                 act_params=[{"alpha": 0.05}, {}])
    a = FrozenModel(a.layers, a.buffers, a.input_shape, a.output_shape, a.output_dtype,
                    meta={"source": "fuzz", "classes": "[0, 1, 2]"})
    b = int8_mlp([6, 5, 3], lut=np.tanh, head="argmax")
    c = residual_mlp(d=6, hidden=8, n_out=3, blocks=1)
    d = two_branch(d=5)
    return [a, b, c, d, _cnn_fp32(), _cnn_int8(), _table_ops()]


# ------------------------------------------------------------------------------ synthetic graphs

def _factor(rnd, n: int, rank: int) -> tuple[int, ...]:
    """A random shape of `rank` dims whose product is n."""
    dims = [1] * rank
    m = n
    for k in range(rank - 1):
        divs = [d for d in (2, 3, 4, 5, 8, 16, 64, 256, 1024, 4096) if m % d == 0]
        if divs and rnd.random() < 0.7:
            d = rnd.choice(divs)
            dims[k] = d
            m //= d
    dims[-1] = m
    rnd.shuffle(dims)
    return tuple(dims)


def _huge_shape(rnd) -> tuple[int, ...]:
    return _factor(rnd, rnd.choice(HUGE_COUNTS), rnd.choice((1, 2, 3)))


class _Synth:
    def __init__(self, rnd: random.Random):
        self.rnd = rnd
        self.hostile = rnd.random() < 0.6
        self.bb = BufferBuilder()
        self.layers: list[Layer] = []
        self.shapes: list[tuple] = []    # per tensor id
        self.dtypes: list[str] = []      # "f32" | "i8"
        self.sources: list = []          # op that made the tensor (None: input)

    def extreme(self, p=0.25) -> bool:
        return self.hostile and self.rnd.random() < p

    def int_attr(self, good: int, p=0.25) -> int:
        return self.rnd.choice(EXTREME_INTS) if self.extreme(p) else good

    def scale(self) -> float:
        return self.rnd.choice(EXTREME_FLOATS) if self.extreme(0.1) else self.rnd.choice((0.01, 0.05, 0.1, 0.5))

    def zp(self) -> int:
        return self.rnd.choice((-129, 128, 1000)) if self.extreme(0.05) else self.rnd.randint(-10, 10)

    def add(self, layer: Layer, shape, dtype) -> int:
        self.layers.append(layer)
        self.shapes.append(tuple(shape))
        self.dtypes.append(dtype)
        self.sources.append(layer.op)
        return len(self.layers)

    def pick(self, dtype: str) -> int | None:
        ids = [t for t, d in enumerate(self.dtypes) if d == dtype]
        if not ids:
            return None
        if self.rnd.random() < 0.6:
            return ids[-1]
        return self.rnd.choice(ids)

    def reshape(self, t: int, shape) -> int:
        size = math.prod(self.shapes[t])
        if math.prod(shape) != size and not self.extreme(0.2):
            shape = (size,)
        return self.add(Layer(Op.RESHAPE, self.shapes[t], shape, inputs=(t,)), shape, self.dtypes[t])

    def tensor(self, arr, huge_shape=None):
        """A weight tensor; in hostile draws sometimes declared far larger than what is stored."""
        ref = self.bb.add(arr)
        if huge_shape is not None or self.extreme(0.03):
            from rtinfer.frozen import TensorRef
            shape = huge_shape or (self.rnd.choice(HUGE_COUNTS),)
            ref = TensorRef(ref.buffer, ref.offset, tuple(shape))
        return ref

    def weights_ok(self, n: int) -> bool:
        return n <= 1 << 17

    # -- one op --------------------------------------------------------------------------------
    def step(self) -> None:
        rnd = self.rnd
        f = self.pick("f32")
        q = self.pick("i8")
        ops = ["act", "affine", "dense", "softmax", "argmax", "reshape", "binary", "concat", "slice", "window",
               "gap", "quantize", "gather", "layernorm", "matmul", "const", "dynquant"]
        if q is not None:
            ops += ["dequantize", "qdense", "qlut", "qbinary", "qconcat", "qslice", "qwindow", "qgather"]
        if self.hostile:
            ops += ["outer"]
        kind = rnd.choice(ops)
        if kind in ("dequantize", "qdense", "qlut", "qbinary", "qconcat", "qslice", "qwindow", "qgather"):
            t = q
        else:
            t = f
        if t is None:
            return
        shape = self.shapes[t]
        n = math.prod(shape)
        getattr(self, "op_" + kind)(t, shape, n)

    def op_act(self, t, shape, n):
        act = self.rnd.choice(list(Act))
        attrs = {}
        if self.rnd.random() < 0.3:
            attrs["alpha"] = self.rnd.choice((0.1, 1.0) + EXTREME_FLOATS)
        if self.rnd.random() < 0.2:
            attrs["beta"] = self.rnd.choice((0.5, 6.0) + EXTREME_FLOATS)
        self.add(Layer(Op.ACT, shape, shape, act, attrs=attrs, inputs=(t,)), shape, "f32")

    def op_affine(self, t, shape, n):
        if not self.weights_ok(n):
            s = self.tensor(np.ones(4, np.float32), huge_shape=(n,))
            tt = self.tensor(np.zeros(4, np.float32), huge_shape=(n,))
        else:
            s = self.tensor(np.linspace(0.5, 1.5, n, dtype=np.float32))
            tt = self.tensor(np.linspace(-0.1, 0.1, n, dtype=np.float32))
        self.add(Layer(Op.AFFINE, shape, shape, self.rnd.choice((Act.IDENTITY, Act.RELU)), {"s": s, "t": tt},
                       inputs=(t,)), shape, "f32")

    def op_dense(self, t, shape, n):
        n_out = self.rnd.choice((1, 2, 3, 7, 16)) if not self.extreme(0.2) else self.rnd.choice((1 << 12, 1 << 20, 1 << 28))
        if self.rnd.random() < 0.15:  # wide but real: broadcasts of two of these are millions of elements
            n_out = self.rnd.choice((256, 1024, 2048))
        if self.weights_ok(n * n_out):
            W = self.tensor((np.random.default_rng(n).standard_normal((n, n_out)) / math.sqrt(n)).astype(np.float32))
        else:
            W = self.tensor(np.zeros(8, np.float32), huge_shape=(n, n_out))
        b = self.tensor(np.zeros(min(n_out, 1 << 14), np.float32), huge_shape=None if n_out <= 1 << 14 else (n_out,))
        self.add(Layer(Op.DENSE, (n,), (n_out,), self.rnd.choice(list(Act)), {"W": W, "b": b}, inputs=(t,)),
                 (n_out,), "f32")

    def _axis(self, shape, n):
        if self.extreme(0.3):
            return {k: self.rnd.choice(EXTREME_INTS + (1, n)) for k in ("outer", "axis_len", "inner")}
        if len(shape) >= 2:
            k = self.rnd.randrange(len(shape))
            return {"outer": math.prod(shape[:k]), "axis_len": shape[k], "inner": math.prod(shape[k + 1:])}
        return {"outer": 1, "axis_len": n, "inner": 1}

    def op_softmax(self, t, shape, n):
        op = self.rnd.choice((Op.SOFTMAX, Op.LOG_SOFTMAX))
        self.add(Layer(op, shape, shape, attrs=self._axis(shape, n), inputs=(t,)), shape, "f32")

    def op_argmax(self, t, shape, n):
        attrs = self._axis(shape, n)
        out = (max(1, int(attrs["outer"]) * int(attrs["inner"])) if abs(attrs["outer"] * attrs["inner"]) < 1 << 32
               else 1,)
        self.add(Layer(Op.ARGMAX, shape, out, attrs=attrs, inputs=(t,)), out, "f32")

    def op_outer(self, t, shape, n):
        """DENSE to a wide layer, then its outer product with itself (BINARY of (w, 1) by
        (1, w)): w^2 elements per sample (4M for w = 2048) from a small input and weights."""
        if n * 2048 > 1 << 17:
            return self.op_act(t, shape, n)
        w = self.rnd.choice((512, 1024, 2048))
        rng = np.random.default_rng(w)
        W = self.tensor((rng.standard_normal((n, w)) / math.sqrt(n)).astype(np.float32))
        b = self.tensor(np.zeros(w, np.float32))
        d = self.add(Layer(Op.DENSE, (n,), (w,), Act.TANH, {"W": W, "b": b}, inputs=(t,)), (w,), "f32")
        a = self.reshape(d, (w, 1))
        c = self.reshape(d, (1, w))
        self.add(Layer(Op.BINARY, (w, 1), (w, w), attrs={"fn": self.rnd.choice((0, 2))}, inputs=(a, c)), (w, w), "f32")

    def op_reshape(self, t, shape, n):
        if self.extreme(0.3):
            self.reshape(t, _huge_shape(self.rnd))
        else:
            self.reshape(t, _factor(self.rnd, n, self.rnd.choice((1, 2, 3))))

    def _partner(self, t, dtype):
        """A second input for a binary op and its shape: the same tensor, another of a shape
        that broadcasts, or (hostile) t as (m, 1) and another as (1, k): m * k elements."""
        rnd = self.rnd
        shape = self.shapes[t]
        if self.extreme(0.5):
            u = self.pick(dtype)
            a = self.reshape(t, (math.prod(shape), 1))
            b = self.reshape(u, (1, math.prod(self.shapes[u])))
            return a, b
        cands = []
        for u, (s, d) in enumerate(zip(self.shapes, self.dtypes)):
            if d != dtype:
                continue
            try:
                np.broadcast_shapes(shape, s)
            except ValueError:
                continue
            cands.append(u)
        return t, rnd.choice(cands) if cands else t

    def op_binary(self, t, shape, n, dtype="f32"):
        a, b = self._partner(t, dtype)
        sa, sb = self.shapes[a], self.shapes[b]
        try:
            out = tuple(np.broadcast_shapes(sa, sb))
        except ValueError:
            out = sa
        fn = self.int_attr(self.rnd.randrange(len(Bin)), 0.1)
        if dtype == "f32":
            layer = Layer(Op.BINARY, sa, out, self.rnd.choice((Act.IDENTITY, Act.RELU, Act.TANH)), attrs={"fn": fn},
                          inputs=(a, b))
        else:
            if fn == Bin.DIV and not self.extreme(0.5):
                fn = int(Bin.ADD)
            attrs = {"fn": fn, "a_scale": self.scale(), "a_zp": self.zp(), "b_scale": self.scale(), "b_zp": self.zp(),
                     "y_scale": self.scale(), "y_zp": self.zp(), "qmin": -128, "qmax": 127}
            layer = Layer(Op.QBINARY, sa, out, attrs=attrs, inputs=(a, b))
        self.add(layer, out, dtype)

    def op_concat(self, t, shape, n, dtype="f32"):
        rnd = self.rnd
        k = rnd.choice((1, 2, 3)) if not self.extreme(0.3) else rnd.choice((100, 1000, 4096, 4096, 65536, 65537))
        axis = rnd.randrange(len(shape)) if shape else 0
        ins = [t] * k
        if k <= 3:  # other tensors of the same shape except on the axis
            for u, s in enumerate(self.shapes):
                if (self.dtypes[u] == dtype and len(s) == len(shape) and u != t and rnd.random() < 0.5
                        and all(s[d] == shape[d] for d in range(len(shape)) if d != axis)):
                    ins[rnd.randrange(k)] = u
        total = sum(self.shapes[u][axis] for u in ins) if shape else k
        out = tuple(total if d == axis else shape[d] for d in range(len(shape))) or (k,)
        axis = self.int_attr(axis, 0.1)
        if dtype == "f32":
            layer = Layer(Op.CONCAT, shape, out, attrs={"axis": axis}, inputs=tuple(ins))
        else:
            layer = Layer(Op.QCONCAT, shape, out, attrs={"axis": axis, "y_scale": 0.1, "y_zp": 0}, inputs=tuple(ins))
        self.add(layer, out, dtype)

    def op_slice(self, t, shape, n, dtype="f32"):
        rnd = self.rnd
        if not shape:
            return
        axis = rnd.randrange(len(shape))
        L = shape[axis]
        step = rnd.choice((1, 1, 2, -1, 3))
        start = rnd.randrange(L) if step > 0 else L - 1
        count = max(1, len(range(start, L if step > 0 else -1, step)) if L > 0 else 1)
        attrs = {"axis": self.int_attr(axis, 0.1), "start": self.int_attr(start), "step": self.int_attr(step)}
        out = tuple(count if d == axis else shape[d] for d in range(len(shape)))
        if self.extreme(0.1):
            out = tuple(rnd.choice(EXTREME_INTS[2:7]) if d == axis else shape[d] for d in range(len(shape)))
        op = Op.SLICE if dtype == "f32" else Op.QSLICE
        if dtype == "i8":
            attrs.update(y_scale=0.1, y_zp=0)
        self.add(Layer(op, shape, out, attrs=attrs, inputs=(t,)), out, dtype)

    def _geometry(self, shape):
        rnd = self.rnd
        two_d = len(shape) == 3
        h, w = (shape[1], shape[2]) if two_d else (1, shape[1])
        kh = rnd.randint(1, min(3, h)) if two_d else 1
        kw = rnd.randint(1, min(3, w))
        g = geometry_attrs((kh, kw), stride=(rnd.randint(1, 2) if two_d else 1, rnd.randint(1, 2)),
                           pads=((rnd.randint(0, 1), rnd.randint(0, 1)) if two_d else (0, 0), (rnd.randint(0, 1), 0)))
        if self.hostile:
            for key in rnd.sample(CONV_GEOMETRY_ATTRS, rnd.randint(1, 3)):
                if not two_d and key in ("kernel_h", "stride_h", "dilation_h", "pad_top", "pad_bottom") \
                        and rnd.random() < 0.7:
                    continue
                g[key] = rnd.choice(EXTREME_INTS)
        return g

    def _window_input(self, t):
        shape = self.shapes[t]
        if len(shape) in (2, 3) and shape[0] <= 64:
            return t, shape
        n = math.prod(shape)
        new = (1, n) if self.rnd.random() < 0.5 else _factor(self.rnd, n, 3)
        return self.reshape(t, new), self.shapes[-1]

    def op_window(self, t, shape, n, dtype="f32"):
        rnd = self.rnd
        t, shape = self._window_input(t)
        if len(shape) not in (2, 3):
            return
        g = self._geometry(shape)
        kind = rnd.choice(("conv", "max", "avg"))
        c = shape[0]
        o = c if kind != "conv" else rnd.choice((1, 2, 4))
        try:
            out = window_out_shape(shape, g, o)
            if any(d < 1 or d >= 1 << 32 for d in out):
                raise ValueError
        except (ValueError, ZeroDivisionError, OverflowError):
            out = (o,) + tuple(rnd.choice((1, 2, 1 << 20)) for _ in shape[1:])
        attrs = dict(g)
        tensors = {}
        if kind == "conv":
            group = self.int_attr(1, 0.1)
            attrs["group"] = group
            kh, kw = g["kernel_h"], g["kernel_w"]
            wshape = (o, c, kh, kw)
            size = o * c * kh * kw if kh > 0 and kw > 0 else 0
            if dtype == "f32":
                W = (0.3 * np.random.default_rng(size).standard_normal(size)).astype(np.float32) if \
                    0 < size <= 1 << 14 else np.zeros(4, np.float32)
                tensors = {"W": self.tensor(W.reshape(wshape) if W.size == size else W,
                                            None if W.size == size else wshape),
                           "b": self.tensor(np.zeros(o, np.float32))}
                op = Op.CONV
            else:
                Wq = np.ones(size, np.int8) if 0 < size <= 1 << 14 else np.zeros(4, np.int8)
                tensors = {"W": self.tensor(Wq.reshape(wshape) if Wq.size == size else Wq,
                                            None if Wq.size == size else wshape),
                           "b": self.tensor(np.zeros(o, np.int32)),
                           "w_scale": self.tensor(np.full(o, 0.01, np.float32))}
                attrs.update(x_scale=self.scale(), x_zp=self.zp(), y_scale=self.scale(), y_zp=self.zp(),
                             qmin=-128, qmax=127)
                op = Op.QCONV
        elif kind == "max":
            op = Op.MAXPOOL if dtype == "f32" else Op.QMAXPOOL
            if dtype == "i8":
                attrs.update(x_scale=0.1, x_zp=0)
        else:
            op = Op.AVGPOOL if dtype == "f32" else Op.QAVGPOOL
            attrs["count_include_pad"] = self.int_attr(rnd.randint(0, 1), 0.1)
            if dtype == "i8":
                attrs.update(x_scale=self.scale(), x_zp=self.zp(), y_scale=self.scale(), y_zp=self.zp())
        act = rnd.choice((Act.IDENTITY, Act.RELU)) if op == Op.CONV else Act.IDENTITY
        self.add(Layer(op, shape, out, act, tensors, attrs, inputs=(t,)), out, dtype)

    def op_gap(self, t, shape, n):
        t, shape = self._window_input(t)
        out = (shape[0],) if self.rnd.random() < 0.5 else (shape[0],) + (1,) * (len(shape) - 1)
        self.add(Layer(Op.GLOBAL_AVGPOOL, shape, out, inputs=(t,)), out, "f32")

    def op_quantize(self, t, shape, n):
        self.add(Layer(Op.QUANTIZE, shape, shape, attrs={"y_scale": self.scale(), "y_zp": self.zp()}, inputs=(t,)),
                 shape, "i8")

    def op_dequantize(self, t, shape, n):
        self.add(Layer(Op.DEQUANTIZE, shape, shape, attrs={"x_scale": self.scale(), "x_zp": self.zp()},
                       inputs=(t,)), shape, "f32")

    def op_qdense(self, t, shape, n):
        n_out = self.rnd.choice((1, 3, 8)) if not self.extreme(0.2) else self.rnd.choice((1 << 12, 1 << 24))
        if self.weights_ok(n * n_out):
            W = self.tensor(np.random.default_rng(n).integers(-40, 40, size=(n, n_out)).astype(np.int8))
            b = self.tensor(np.zeros(n_out, np.int32))
            ws = self.tensor(np.full(n_out, 0.02, np.float32))
        else:
            W = self.tensor(np.zeros(8, np.int8), huge_shape=(n, n_out))
            b = self.tensor(np.zeros(4, np.int32), huge_shape=(n_out,))
            ws = self.tensor(np.full(4, 0.02, np.float32), huge_shape=(n_out,))
        attrs = {"x_scale": self.scale(), "x_zp": self.zp(), "y_scale": self.scale(), "y_zp": self.zp(),
                 "qmin": -128, "qmax": 127}
        self.add(Layer(Op.QDENSE, (n,), (n_out,), tensors={"W": W, "b": b, "w_scale": ws}, attrs=attrs, inputs=(t,)),
                 (n_out,), "i8")

    def op_qlut(self, t, shape, n):
        table = self.tensor(np.arange(-128, 128, dtype=np.int64).clip(-128, 127)[::-1].astype(np.int8))
        self.add(Layer(Op.QLUT, shape, shape, tensors={"table": table},
                       attrs={"x_scale": 0.1, "x_zp": 0, "y_scale": 0.1, "y_zp": 0}, inputs=(t,)), shape, "i8")

    def op_gather(self, t, shape, n, dtype="f32"):
        """A gather table: in range, -1 (fill), or (hostile) out of range / huge outputs."""
        rnd = self.rnd
        n_out = rnd.choice((1, n, 2 * n, n + 3)) if not self.extreme(0.2) else rnd.choice(HUGE_COUNTS)
        if self.weights_ok(n_out):
            index = np.random.default_rng(n_out).integers(-1, max(n, 1), size=n_out).astype(np.int32)
            if self.extreme(0.2):
                index[rnd.randrange(n_out)] = rnd.choice((min(n, (1 << 31) - 1), -2, (1 << 31) - 1, -(1 << 31)))
            ref = self.tensor(index)
        else:
            ref = self.tensor(np.zeros(4, np.int32), huge_shape=(n_out,))
        if dtype == "f32":
            attrs = {"fill": rnd.choice((0.0, -math.inf) + (EXTREME_FLOATS if self.extreme(0.2) else ()))}
            self.add(Layer(Op.GATHER, shape, (n_out,), tensors={"index": ref}, attrs=attrs, inputs=(t,)),
                     (n_out,), "f32")
        else:
            attrs = {"fill": self.zp(), "y_scale": self.scale(), "y_zp": self.zp()}
            self.add(Layer(Op.QGATHER, shape, (n_out,), tensors={"index": ref}, attrs=attrs, inputs=(t,)),
                     (n_out,), "i8")

    def op_matmul(self, t, shape, n):
        """t viewed as (g, m, k) times another tensor (or t itself) viewed as (g or 1, k, nn);
        hostile: factorizations that do not multiply out, huge groups."""
        rnd = self.rnd
        u = self.pick("f32")
        nu = math.prod(self.shapes[u])
        k = rnd.choice([d for d in range(1, min(n, 64) + 1) if n % d == 0])
        m, g = n // k, 1
        if 1 < m <= 4096 and rnd.random() < 0.5:
            g = rnd.choice([d for d in range(1, m + 1) if m % d == 0])
            m //= g
        if nu % k == 0 and rnd.random() < 0.5:
            nn, gb = nu // k, 1
        elif nu % (g * k) == 0:
            nn, gb = nu // (g * k), g
        else:
            u, nn, gb = t, n // k, 1
            if (n // k) * k != n:
                return self.op_act(t, shape, n)
        attrs = {"groups": g, "m": m, "k": k, "n": nn, "a_groups": g, "b_groups": gb}
        if self.extreme(0.3):
            key = rnd.choice(list(attrs))
            attrs[key] = rnd.choice(EXTREME_INTS)
        out = (max(1, min(g * m * nn, 1 << 40)),) if not self.extreme(0.1) else _huge_shape(rnd)
        self.add(Layer(Op.MATMUL, shape, out, attrs=attrs, inputs=(t, u)), out, "f32")

    def op_const(self, t, shape, n):
        """A stored tensor as the output (int64 when integer); hostile: huge declared shapes."""
        rnd = self.rnd
        size = rnd.choice((1, 2, 5, 16))
        v = np.array([rnd.randint(-9, 9) for _ in range(size)], np.float32)
        if rnd.random() < 0.3:
            v = v + np.float32(0.5)
        ref = self.tensor(v, huge_shape=(rnd.choice(HUGE_COUNTS),) if self.extreme(0.2) else None)
        out = (size,)
        self.add(Layer(Op.CONST, shape, out, tensors={"value": ref}, inputs=(t,)), out, "f32")
        if rnd.random() < 0.5 and np.all(v == np.round(v)):
            self.sources[-1] = Op.ARGMAX  # an integer CONST may be an int64 output, as ARGMAX's

    def op_dynquant(self, t, shape, n):
        """DYNQUANT mode 0 (t's shape) or 1 (one scale); hostile: other modes, declared shapes
        that do not match the mode."""
        rnd = self.rnd
        mode = rnd.choice((0, 1))
        out = shape if mode == 0 else (1,)
        if self.extreme(0.2):
            mode = rnd.choice((2, -1) + EXTREME_INTS)
        if self.extreme(0.1):
            out = rnd.choice(((1,), shape, _huge_shape(rnd)))
        self.add(Layer(Op.DYNQUANT, shape, out, attrs={"mode": mode}, inputs=(t,)), out, "f32")

    def op_qgather(self, t, shape, n):
        self.op_gather(t, shape, n, "i8")

    def op_layernorm(self, t, shape, n):
        attrs = self._axis(shape, n)
        attrs.pop("inner")
        if not self.extreme(0.3) and attrs["outer"] * attrs["axis_len"] != n:
            attrs = {"outer": 1, "axis_len": n}
        attrs["epsilon"] = self.rnd.choice((1e-5, 1e-12) + (EXTREME_FLOATS if self.extreme(0.3) else ()))
        k = attrs["axis_len"]
        if isinstance(k, int) and 0 < k <= 1 << 14:
            sc, bi = self.tensor(np.ones(k, np.float32)), self.tensor(np.zeros(k, np.float32))
        else:
            sc = self.tensor(np.ones(4, np.float32), huge_shape=(self.rnd.choice(HUGE_COUNTS),))
            bi = self.tensor(np.zeros(4, np.float32))
        self.add(Layer(Op.LAYERNORM, shape, shape, tensors={"scale": sc, "bias": bi}, attrs=attrs, inputs=(t,)),
                 shape, "f32")

    def op_qbinary(self, t, shape, n):
        self.op_binary(t, shape, n, "i8")

    def op_qconcat(self, t, shape, n):
        self.op_concat(t, shape, n, "i8")

    def op_qslice(self, t, shape, n):
        self.op_slice(t, shape, n, "i8")

    def op_qwindow(self, t, shape, n):
        self.op_window(t, shape, n, "i8")

    # -- the model ------------------------------------------------------------------------------
    def build(self) -> RawModel:
        rnd = self.rnd
        if self.extreme(0.4):
            in_shape = _huge_shape(rnd)
        else:
            in_shape = rnd.choice(((4,), (6,), (2, 8), (3, 5, 4), (1, 16), (16,), (2, 3, 3)))
        self.shapes.append(tuple(in_shape))
        self.dtypes.append("f32")
        self.sources.append(None)
        for _ in range(rnd.randint(1, 7)):
            self.step()
        if not self.layers:
            self.op_act(0, in_shape, math.prod(in_shape))
        # int8 tensors nobody reads are dequantized so they can be outputs
        used = {u for layer in self.layers for u in layer.inputs}
        for t in range(1, len(self.shapes)):
            if t not in used and self.dtypes[t] == "i8" and not self.extreme(0.1):
                self.op_dequantize(t, self.shapes[t], math.prod(self.shapes[t]))
        used = {u for layer in self.layers for u in layer.inputs}
        outs = [t for t in range(1, len(self.shapes)) if t not in used]
        if self.extreme(0.1):
            outs.append(rnd.randrange(1, len(self.shapes)))
        if self.extreme(0.05):
            outs = outs[:1]
        outputs = []
        for t in outs[:8]:
            dtype = "int64" if self.sources[t] == Op.ARGMAX else "float32"
            if self.extreme(0.05):
                dtype = "int64" if dtype == "float32" else "float32"
            shape = self.shapes[t]
            if self.extreme(0.05):
                shape = (math.prod(shape),)
            outputs.append(Output(t, shape, dtype))
        return RawModel([_clamped(layer) for layer in self.layers], self.bb.finish(), _clamp(in_shape),
                        [Output(o.tensor, _clamp(o.shape), o.dtype) for o in outputs])


def _clamp(shape) -> tuple[int, ...]:
    """Dims the .rtm format can hold (u32): a generated overflow is stored as 2^32 - 1."""
    return tuple(min(max(int(d), 0), (1 << 32) - 1) for d in shape)


def _clamped(layer: Layer) -> Layer:
    from dataclasses import replace
    from rtinfer.frozen import TensorRef
    tensors = {k: TensorRef(r.buffer, r.offset, _clamp(r.shape)) for k, r in layer.tensors.items()}
    return replace(layer, in_shape=_clamp(layer.in_shape), out_shape=_clamp(layer.out_shape), tensors=tensors)


def synth(rnd: random.Random) -> RawModel:
    """A random hostile graph (see the module doc)."""
    return _Synth(rnd).build()
