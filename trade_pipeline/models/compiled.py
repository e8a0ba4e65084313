"""A LightGBM booster compiled into flat tree arrays, evaluated by a numba-jitted function.

LightGBM's own one-row `predict` spends ~50-100 µs in Python/C++ plumbing; walking ~500 trees
of depth ~8 takes a few µs. The arrays come from the booster's text dump (full-precision
thresholds and leaf values), and the walk reproduces LightGBM's `NumericalDecision`:

- `|x| <= 1e-35` counts as 0 (LightGBM drops such values when it reads a dense row);
- missing type `NaN`: a NaN goes to the default child; missing type `Zero`: a NaN is read as 0
  and a 0 goes to the default child; missing type `None`: a NaN is read as 0;
- otherwise `x <= threshold` goes left.

Tree outputs are summed in tree order in double precision, as LightGBM does, so the result
matches `Booster.predict` to round-off (the parity test checks max |diff| < 1e-9).
Categorical splits and linear trees are refused (this project does not use them).
"""

from dataclasses import dataclass

import numba
import numpy as np

from trade_pipeline.errors import TradePipelineError

_ZERO = 1e-35
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2


class CompileError(TradePipelineError, ValueError):
    """The booster uses something the compiled evaluator does not support."""


@dataclass(frozen=True)
class TreeArrays:
    """All trees of a model in flat arrays. Child index >= 0: internal node (global index);
    < 0: leaf `~child` (global leaf index)."""

    roots: np.ndarray  # int32 [n_trees]; a single-leaf tree has root = ~leaf
    feature: np.ndarray  # int32 [n_nodes]
    threshold: np.ndarray  # float64 [n_nodes]
    default_left: np.ndarray  # bool [n_nodes]
    missing: np.ndarray  # int8 [n_nodes]
    left: np.ndarray  # int32 [n_nodes]
    right: np.ndarray  # int32 [n_nodes]
    leaf_value: np.ndarray  # float64 [n_leaves]
    num_class: int
    objective: str
    feature_names: tuple[str, ...]

    @property
    def n_trees(self) -> int:
        return int(self.roots.size)


def _parse_header_and_trees(model_text: str) -> tuple[dict, list[dict]]:
    header: dict[str, str] = {}
    trees: list[dict] = []
    current: dict | None = None
    for raw in model_text.splitlines():
        line = raw.strip()
        if line.startswith("end of trees"):
            break
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
            continue
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        (current if current is not None else header)[key] = value
    return header, trees


def compile_model_text(model_text: str) -> TreeArrays:
    """Compile the text of `Booster.model_to_string()` into `TreeArrays`."""
    header, trees = _parse_header_and_trees(model_text)
    num_class = int(header.get("num_class", "1"))
    objective = header.get("objective", "regression").split()[0]
    if objective not in ("regression", "regression_l2", "regression_l1", "huber", "multiclass"):
        raise CompileError(f"objective {objective!r} is not supported by the compiled evaluator")
    names = tuple(header.get("feature_names", "").split())
    roots, feature, threshold, default_left, missing, left, right, leaves = (
        [], [], [], [], [], [], [], []
    )
    for i, tree in enumerate(trees):
        if int(tree.get("num_cat", "0")) != 0:
            raise CompileError(f"tree {i} has categorical splits (not supported)")
        if int(tree.get("is_linear", "0")) != 0:
            raise CompileError(f"tree {i} is a linear tree (not supported)")
        leaf_values = [float(v) for v in tree["leaf_value"].split()]
        node_base, leaf_base = len(feature), len(leaves)
        leaves.extend(leaf_values)
        n_leaves = int(tree["num_leaves"])
        if n_leaves == 1:
            roots.append(~leaf_base)
            continue
        roots.append(node_base)
        dtypes = [int(v) for v in tree["decision_type"].split()]
        for d in dtypes:
            if d & 1:
                raise CompileError(f"tree {i} has a categorical decision")
        feature.extend(int(v) for v in tree["split_feature"].split())
        threshold.extend(float(v) for v in tree["threshold"].split())
        default_left.extend(bool(d & 2) for d in dtypes)
        missing.extend((d >> 2) & 3 for d in dtypes)
        for src, dst in ((tree["left_child"], left), (tree["right_child"], right)):
            for c in (int(v) for v in src.split()):
                dst.append(node_base + c if c >= 0 else ~(leaf_base + ~c))
    if not trees:
        raise CompileError("the model has no trees")
    if len(trees) % num_class:
        raise CompileError(f"{len(trees)} trees do not divide into {num_class} classes")
    return TreeArrays(
        roots=np.asarray(roots, dtype=np.int32),
        feature=np.asarray(feature, dtype=np.int32),
        threshold=np.asarray(threshold, dtype=np.float64),
        default_left=np.asarray(default_left, dtype=np.bool_),
        missing=np.asarray(missing, dtype=np.int8),
        left=np.asarray(left, dtype=np.int32),
        right=np.asarray(right, dtype=np.int32),
        leaf_value=np.asarray(leaves, dtype=np.float64),
        num_class=num_class,
        objective=objective,
        feature_names=names,
    )


# One 16-byte record per node, trees laid out depth-first (pre-order): the left child of
# node i is i + 1, so a path mostly walks forward through neighbouring cache lines, and only
# the right child's index is stored. Leaves are records too (flags = _LEAF), holding the leaf
# value in `value`; an internal node (flags = _INTERNAL) holds its threshold there.
NODE_DTYPE = np.dtype([("value", np.float64), ("right", np.int32), ("feature", np.int16),
                       ("flags", np.int8), ("pad", np.int8)])
_INTERNAL, _LEAF = 1, 8
LANES = 8
# LightGBM's missing-value rules are folded in at compile time, so a decision is a single
# `x > threshold`. Each row is expanded once into N_COPIES copies (`_expand`) that differ
# only in how NaN and 0 read: copy 0: NaN -> +inf; copy 1: NaN -> -inf; copy 2: NaN and 0 ->
# +inf; copy 3: NaN and 0 -> -inf (+inf goes right, -inf left of a finite threshold); copy 4:
# 1.0 for NaN, else 0.0; copy 5: 1.0 for NaN or 0, else 0.0. A node reads feature
# `f + n_features * copy`, the copy chosen from its missing type and default child:
# - missing type NaN: a NaN goes to the default child (copy 0 or 1);
# - missing type Zero: a NaN is read as 0 and a 0 goes to the default child (copy 2 or 3);
# - missing type None: a NaN is read as 0.0 and compared (copy 0 if 0 > threshold, else 1).
# A threshold of +inf (LightGBM's "NaN against the rest" split) sends every number left, so
# only the missing rule matters: it reads the indicator copy 4 (type NaN, None) or 5 (type
# Zero) against 0.5 (missing goes right) or 1.5 (nothing goes right).
N_COPIES = 6
def pack_nodes(a: "TreeArrays", n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(roots, nodes): every tree in pre-order, internal nodes and leaves as records."""
    thr = a.threshold.copy()
    if np.isnan(thr).any() or (thr == -np.inf).any():
        raise CompileError("the model has a NaN or -inf split threshold")
    if a.feature.size and (a.feature.min() < 0 or a.feature.max() >= n_features):
        raise CompileError(f"a split uses a feature outside 0..{n_features - 1}")
    if N_COPIES * n_features > np.iinfo(np.int16).max:
        raise CompileError(f"too many features ({n_features}) for the node layout")
    default_right = ~a.default_left
    zero_missing = a.missing == _MISSING_ZERO
    nan_right = np.where(a.missing == _MISSING_NONE, ~(thr >= 0.0), default_right)
    copy = np.where(zero_missing, np.where(default_right, 2, 3), np.where(nan_right, 0, 1))
    inf = thr == np.inf
    # +inf: numbers go left; missing (NaN; and 0 for type Zero) goes right iff it would
    # (type None reads NaN as 0.0, which is not > inf: left).
    missing_right = np.where(a.missing == _MISSING_NONE, False, default_right)
    copy = np.where(inf, np.where(zero_missing, 5, 4), copy)
    thr = np.where(inf, np.where(missing_right, 0.5, 1.5), thr)
    feature = a.feature.astype(np.int64) + n_features * copy
    out = np.zeros(a.feature.size + a.leaf_value.size, dtype=NODE_DTYPE)
    roots = np.empty(a.roots.size, dtype=np.int32)
    pos = 0
    for t, root in enumerate(a.roots):
        roots[t] = pos
        stack = [(int(root), -1)]  # (node, index of the parent whose right child it is)
        while stack:
            node, parent = stack.pop()
            if parent >= 0:
                out[parent]["right"] = pos
            if node < 0:
                out[pos] = (a.leaf_value[~node], 0, 0, _LEAF, 0)
            else:
                out[pos] = (thr[node], 0, feature[node], _INTERNAL, 0)
                stack.append((int(a.right[node]), pos))
                stack.append((int(a.left[node]), -1))  # popped next: lands at pos + 1
            pos += 1
    return roots, out


@numba.njit(inline="always")
def _step(xs, nodes, i):
    """One decision (LightGBM's NumericalDecision, missing values folded into `xs`, see
    above). Branch-free: `& flags` (1 on an internal node) keeps `right` an integer, so LLVM
    leaves the arithmetic select alone instead of turning it into a mispredicted branch."""
    nd = nodes[i]
    right = np.int32(xs[nd.feature] > nd.value) & np.int32(nd.flags)
    return i + 1 + right * (nd.right - i - 1)


@numba.njit(inline="always")
def _expand(x, xs):
    """The row's copies (see N_COPIES); |x| <= 1e-35 reads as 0, as LightGBM's dense row
    reader does."""
    n = x.shape[0]
    for k in range(n):
        v = x[k]
        if v != v:
            xs[k] = np.inf
            xs[n + k] = -np.inf
            xs[2 * n + k] = np.inf
            xs[3 * n + k] = -np.inf
            xs[4 * n + k] = 1.0
            xs[5 * n + k] = 1.0
        elif -1e-35 <= v <= 1e-35:
            xs[k] = 0.0
            xs[n + k] = 0.0
            xs[2 * n + k] = np.inf
            xs[3 * n + k] = -np.inf
            xs[4 * n + k] = 0.0
            xs[5 * n + k] = 1.0
        else:
            xs[k] = v
            xs[n + k] = v
            xs[2 * n + k] = v
            xs[3 * n + k] = v
            xs[4 * n + k] = 0.0
            xs[5 * n + k] = 0.0


@numba.njit(cache=True, nogil=True)
def _raw_scores(x, roots, nodes, num_class, xs, out):
    # Walking one tree is a chain of dependent loads; walking 8 trees in lock-step lets
    # the CPU overlap the chains (measured ~30 % faster than 4 lanes, ~2x faster than 1;
    # 12 or 16 lanes are no faster). xs: scratch of N_COPIES * n_features.
    _expand(x, xs)
    for k in range(num_class):
        out[k] = 0.0
    n = roots.shape[0]
    t = 0
    while t + 8 <= n:
        i0, i1, i2, i3, i4, i5, i6, i7 = (
            roots[t + 0], roots[t + 1], roots[t + 2], roots[t + 3], roots[t + 4], roots[t + 5], roots[t + 6], roots[t + 7]
        )
        while True:
            a0 = (nodes[i0].flags & 8) == 0
            a1 = (nodes[i1].flags & 8) == 0
            a2 = (nodes[i2].flags & 8) == 0
            a3 = (nodes[i3].flags & 8) == 0
            a4 = (nodes[i4].flags & 8) == 0
            a5 = (nodes[i5].flags & 8) == 0
            a6 = (nodes[i6].flags & 8) == 0
            a7 = (nodes[i7].flags & 8) == 0
            if not (a0 or a1 or a2 or a3 or a4 or a5 or a6 or a7):
                break
            if a0:
                i0 = _step(xs, nodes, i0)
            if a1:
                i1 = _step(xs, nodes, i1)
            if a2:
                i2 = _step(xs, nodes, i2)
            if a3:
                i3 = _step(xs, nodes, i3)
            if a4:
                i4 = _step(xs, nodes, i4)
            if a5:
                i5 = _step(xs, nodes, i5)
            if a6:
                i6 = _step(xs, nodes, i6)
            if a7:
                i7 = _step(xs, nodes, i7)
        # Summed in tree order, as LightGBM does, so the result matches it to the last bit.
        # Tree t belongs to class t % num_class (one division per group, not per tree).
        if num_class == 1:
            out[0] += nodes[i0].value
            out[0] += nodes[i1].value
            out[0] += nodes[i2].value
            out[0] += nodes[i3].value
            out[0] += nodes[i4].value
            out[0] += nodes[i5].value
            out[0] += nodes[i6].value
            out[0] += nodes[i7].value
        else:
            c = t % num_class
            out[c] += nodes[i0].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i1].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i2].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i3].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i4].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i5].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i6].value
            c = c + 1 if c + 1 < num_class else 0
            out[c] += nodes[i7].value
            c = c + 1 if c + 1 < num_class else 0
        t += 8
    while t < n:
        i = roots[t]
        while (nodes[i].flags & 8) == 0:
            i = _step(xs, nodes, i)
        out[t % num_class] += nodes[i].value
        t += 1


@numba.njit(cache=True, nogil=True)
def _predict_many(x, roots, nodes, num_class, out):
    xs = np.empty(N_COPIES * x.shape[1], dtype=np.float64)
    buf = np.empty(num_class, dtype=np.float64)
    for r in range(x.shape[0]):
        _raw_scores(x[r], roots, nodes, num_class, xs, buf)
        for k in range(num_class):
            out[r, k] = buf[k]


def _softmax(raw: np.ndarray) -> np.ndarray:
    z = np.exp(raw - raw.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class CompiledBooster:
    """Fast evaluation of one compiled booster. For a 3-class model (classes: down, flat, up)
    `predict_row` returns the signed score `P(up) - P(down)`; `predict_proba_row` the three
    probabilities. One instance reuses its scratch buffers: use one instance per thread."""

    def __init__(self, arrays: TreeArrays) -> None:
        self.arrays = arrays
        a = arrays
        self._buf = np.empty(a.num_class, dtype=np.float64)
        self.n_features = len(a.feature_names) or int(a.feature.max(initial=-1)) + 1
        roots, nodes = pack_nodes(a, self.n_features)
        self._args = (roots, nodes, a.num_class)
        self._xs = np.empty(N_COPIES * self.n_features, dtype=np.float64)
        # Compile now (or load from numba's cache), not on the first live row.
        self.raw_row(np.zeros(self.n_features, dtype=np.float64))

    @classmethod
    def from_booster(cls, booster) -> "CompiledBooster":
        return cls(compile_model_text(booster.model_to_string()))

    def raw_row(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self.n_features:
            raise ValueError(f"expected {self.n_features} features, got {x.shape[0]}")
        _raw_scores(x, *self._args, self._xs, self._buf)
        return self._buf

    def predict_row(self, x: np.ndarray) -> float:
        raw = self.raw_row(x)
        if self.arrays.num_class == 1:
            return float(raw[0])
        p = _softmax(raw)
        return float(p[-1] - p[0])

    def predict_proba_row(self, x: np.ndarray) -> np.ndarray:
        if self.arrays.num_class == 1:
            raise CompileError("a regression model has no class probabilities")
        return _softmax(self.raw_row(x).copy())

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Rows of `x` -> the same values LightGBM's `predict` gives (probabilities for a
        multiclass model)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected shape (n, {self.n_features}), got {x.shape}")
        out = np.empty((x.shape[0], self.arrays.num_class), dtype=np.float64)
        _predict_many(x, *self._args, out)
        return out[:, 0] if self.arrays.num_class == 1 else _softmax(out)
