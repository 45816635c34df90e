"""The diagnosis of a staged backward pass: for a dx that matches no known mistake,
the first of the reader's intermediate gradients (dx_hat, dvar, dmu...) that is
wrong, read from their backward's variables, against bnbook.batchnorm's staged
backward pass."""

import numpy as np

from bnbook.batchnorm import batch_norm_backward_staged, batch_norm_forward
from bnbook.workbook.reference import _float64
from bnbook.workbook.report import _close, _difference

# The staged graph's nodes in the order backward reaches them, the names a reader may
# give their gradients, and how each is computed from the one before.
NODES = [
    ("x_hat", ("dx_hat", "dxhat", "dx_norm"), "dx_hat = gamma * dy"),
    (
        "inv_std",
        ("dinv_std", "dinvstd", "divar", "dinv"),
        "dinv_std = sum(dx_hat * x_centered, axis=0)",
    ),
    ("std", ("dstd", "dsqrtvar"), "dstd = -dinv_std / std**2"),
    ("var", ("dvar", "dvariance"), "dvar = -0.5 * inv_std**3 * dinv_std"),
    ("sq", ("dsq",), "dsq = dvar / m, the same for every example"),
    (
        "x_centered",
        ("dx_centered", "dxc", "dxmu"),
        "dx_centered = inv_std * dx_hat + 2 / m * x_centered * dvar: x_centered "
        "reaches the loss through x_hat and through var",
    ),
    ("mu", ("dmu", "dmean"), "dmu = -sum(dx_centered, axis=0)"),
]


PER_FEATURE = ("inv_std", "std", "var", "mu")  # nodes of shape (D,)


def _node_gradients(case, dy):
    """The loss's gradient with respect to every node of the staged graph, float64."""
    x, gamma, beta = _float64(case)
    _, cache = batch_norm_forward(x, gamma, beta, epsilon=case.eps)  # over axis 0
    *_, nodes = batch_norm_backward_staged(dy, cache, return_nodes=True)
    std = 1 / cache.inv_std
    nodes["std"] = -nodes["inv_std"] / std**2
    nodes["sq"] = np.broadcast_to(nodes["var"] / len(x), x.shape)
    return nodes


def _first_wrong_node(local, case, dy):
    """For a dx that matches no known mistake: the first of the reader's named
    intermediate gradients that is wrong, and how to compute it (or None)."""
    right = _node_gradients(case, dy)
    n, d = case.x.shape
    checked = []
    for node, names, formula in NODES:
        name = next((k for k in names if isinstance(local.get(k), np.ndarray)), None)
        if name is None:
            continue
        value, expected = local[name], right[node]
        sizes = (d,) if node in PER_FEATURE else (n * d,)
        if node == "sq":  # dvar / m, kept per feature or spread over the batch
            sizes = (d, n * d)
        if value.size not in sizes:
            return _wrong_shape(name, node, value, formula, checked, (n, d))
        expected = (expected[0] if value.size == d else expected).reshape(value.shape)
        if not _close(value, expected, case.x.dtype):
            return (
                f"{name}, the gradient of {node}, is the first of your intermediate "
                f"gradients that is wrong (right before it: {', '.join(checked) or 'none'}"
                f"): {formula}.\n"
                + _difference(name, value, expected, case.name)
                + "\nAnd so dx is wrong:"
            )
        checked.append(name)
    return None


def _wrong_shape(name, node, value, formula, checked, shape_of_x):
    """For the reader's gradient ``value`` of ``node`` with the wrong number of
    values: the shape it should have, (D,) or x's (N, D)."""
    n, d = shape_of_x
    shape = "(D,), one per feature" if node in PER_FEATURE else "(N, D), as x"
    return (
        f"{name}, the gradient of {node}, has shape {value.shape}: it has the "
        f"shape of {node}, {shape}, here {(d,) if node in PER_FEATURE else (n, d)}"
        f" (right before it: {', '.join(checked) or 'none'}): {formula}.\n"
        "And so dx is wrong:"
    )
