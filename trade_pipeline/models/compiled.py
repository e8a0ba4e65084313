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

_ZERO = 1e-35
_MISSING_NONE, _MISSING_ZERO, _MISSING_NAN = 0, 1, 2


class CompileError(ValueError):
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


NODE_DTYPE = np.dtype(
    [("threshold", np.float64), ("feature", np.int32), ("flags", np.int32),
     ("left", np.int32), ("right", np.int32)],
    align=True,
)
# flags: bit 0 = a NaN goes right, bit 1 = 0 is "missing" (goes to the default child),
# bit 2 = the default child is the right one. Folding LightGBM's missing-value rules into
# these bits at compile time makes the hot loop branch-free (see `_step`).
_NAN_RIGHT, _ZERO_MISSING, _DEFAULT_RIGHT = 1, 2, 4


def pack_nodes(a: "TreeArrays") -> np.ndarray:
    """One 24-byte record per node (one cache line holds 2-3 nodes of a path)."""
    nodes = np.zeros(a.feature.size, dtype=NODE_DTYPE)
    nodes["threshold"] = a.threshold
    nodes["feature"] = a.feature
    nodes["left"] = a.left
    nodes["right"] = a.right
    m = a.missing.astype(np.int32)
    default_right = ~a.default_left
    # NaN: missing type NaN -> default child; otherwise LightGBM reads it as 0.0, and then 0
    # is either "missing" (type Zero -> default child) or compared with the threshold.
    nan_right = np.where(m == _MISSING_NONE, ~(a.threshold >= 0.0), default_right)
    nodes["flags"] = (nan_right.astype(np.int32) * _NAN_RIGHT
                      + (m == _MISSING_ZERO).astype(np.int32) * _ZERO_MISSING
                      + default_right.astype(np.int32) * _DEFAULT_RIGHT)
    return nodes


@numba.njit(inline="always")
def _step(x, nodes, i):
    """One decision: node i -> its child for row x (LightGBM's NumericalDecision).

    Branch-free: with rows that differ from call to call a branchy walk mispredicts about
    once per node; here the direction is arithmetic: NaN -> bit 0; a value |v| <= 1e-35 on a
    zero-as-missing node -> bit 2; else v > threshold (False for NaN)."""
    nd = nodes[i]
    v = x[nd.feature]
    f = nd.flags
    is_nan = np.int32(v != v)
    tiny = np.int32((v >= -1e-35) & (v <= 1e-35)) & ((f >> 1) & 1)
    right = is_nan * (f & 1) + tiny * ((f >> 2) & 1) + (1 - tiny) * np.int32(v > nd.threshold)
    return nd.left + right * (nd.right - nd.left)


@numba.njit(cache=True, nogil=True)
def _raw_scores(x, roots, nodes, leaf_value, num_class, out):
    # Walking one tree is a chain of dependent loads; walking four trees in lock-step lets
    # the CPU overlap the chains (about 3x faster than one tree at a time here).
    for k in range(num_class):
        out[k] = 0.0
    n = roots.shape[0]
    t = 0
    while t + 4 <= n:
        i0, i1, i2, i3 = roots[t], roots[t + 1], roots[t + 2], roots[t + 3]
        while i0 >= 0 or i1 >= 0 or i2 >= 0 or i3 >= 0:
            if i0 >= 0:
                i0 = _step(x, nodes, i0)
            if i1 >= 0:
                i1 = _step(x, nodes, i1)
            if i2 >= 0:
                i2 = _step(x, nodes, i2)
            if i3 >= 0:
                i3 = _step(x, nodes, i3)
        # Sum in tree order, as LightGBM does, so the result matches it to the last bit.
        out[t % num_class] += leaf_value[~i0]
        out[(t + 1) % num_class] += leaf_value[~i1]
        out[(t + 2) % num_class] += leaf_value[~i2]
        out[(t + 3) % num_class] += leaf_value[~i3]
        t += 4
    while t < n:
        i = roots[t]
        while i >= 0:
            i = _step(x, nodes, i)
        out[t % num_class] += leaf_value[~i]
        t += 1


@numba.njit(cache=True, nogil=True)
def _predict_many(x, roots, nodes, leaf_value, num_class, out):
    buf = np.empty(num_class, dtype=np.float64)
    for r in range(x.shape[0]):
        _raw_scores(x[r], roots, nodes, leaf_value, num_class, buf)
        for k in range(num_class):
            out[r, k] = buf[k]


def _softmax(raw: np.ndarray) -> np.ndarray:
    z = np.exp(raw - raw.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class CompiledBooster:
    """Fast evaluation of one compiled booster. For a 3-class model (classes: down, flat, up)
    `predict_row` returns the signed score `P(up) - P(down)`; `predict_proba_row` the three
    probabilities."""

    def __init__(self, arrays: TreeArrays) -> None:
        self.arrays = arrays
        a = arrays
        self._args = (a.roots, pack_nodes(a), a.leaf_value, a.num_class)
        self._buf = np.empty(a.num_class, dtype=np.float64)
        self.n_features = len(a.feature_names) or int(a.feature.max(initial=-1)) + 1
        # Compile now (or load from numba's cache), not on the first live row.
        self.raw_row(np.zeros(self.n_features, dtype=np.float64))

    @classmethod
    def from_booster(cls, booster) -> "CompiledBooster":
        return cls(compile_model_text(booster.model_to_string()))

    def raw_row(self, x: np.ndarray) -> np.ndarray:
        _raw_scores(x, *self._args, self._buf)
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
