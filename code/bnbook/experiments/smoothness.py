"""Measurements of Santurkar et al. (2018): internal covariate shift and smoothness.

They work on any model given as functions of its parameters, so the same code measures
a NumPy network, a Keras one, or a quadratic with a known answer (the unit tests).

- :func:`ics`: their Definition 2.1. For layer ``i``, compare the gradient ``G`` of the
  loss with respect to its weights with the gradient ``G'`` after the layers *before*
  it have taken their step on the same batch; report ``||G - G'||_2`` and the cosine.
- :func:`landscape_along_gradient`: their Figure 4. From parameters ``w`` with
  gradient ``g``, move to ``w - eta g`` for several step sizes and record the loss,
  the change of the gradient ``||g(w - eta g) - g(w)||`` ("gradient predictiveness")
  and the effective beta-smoothness ``max ||g(w - eta g) - g(w)|| / ||eta g||``.
- :func:`relative_landscape`: the same measurement made independent of the weights'
  scale, which batch norm makes arbitrary: each weight matrix steps by a fraction of
  its own norm, and gradients and steps are measured in units of that norm.
- :func:`gradient_norm_bound`: both sides of their Theorem 4.1 for one batch-norm
  layer, from the gradient arriving at its output.
- :func:`flatten` and :func:`on_flat_vector`: a model's list of parameter arrays as
  one vector, which is what "the direction of the gradient" is taken in;
  :func:`parameters` and :func:`weight_entries`: that list, and where its weight
  matrices are.
- :func:`drift` and :func:`spread_drift`: how far each unit's batch statistics move
  over training (chapter 5's measure of a moving distribution).
- :func:`deep_linear_regression`: their deep linear network's task.
"""

import numpy as np

from bnbook.batchnorm import batch_norm_backward
from bnbook.checks import (
    as_float_array,
    check_callable,
    check_int,
    check_positive,
)

__all__ = [
    "deep_linear_regression",
    "drift",
    "flatten",
    "gradient_norm_bound",
    "ics",
    "landscape_along_gradient",
    "on_flat_vector",
    "parameters",
    "relative_landscape",
    "relative_step",
    "spread_drift",
    "weight_entries",
]


def flatten(arrays):
    """Concatenate arrays, raveled in order, into one float64 vector."""
    return np.concatenate([np.ravel(a) for a in arrays]).astype(np.float64)


def parameters(model):
    """The parameter arrays of ``model`` (anything with ``params()``, as the networks
    of :func:`bnbook.mlp.build_mlp`), in order: the arrays themselves, not copies."""
    if not callable(getattr(model, "params", None)):
        raise TypeError(
            f"model must have a params() method, got {type(model).__name__}"
        )
    return [p for p, _ in model.params()]


def weight_entries(model):
    """Where each dense layer's W sits in ``parameters(model)``: the 2-D arrays."""
    return [k for k, p in enumerate(parameters(model)) if p.ndim == 2]


def on_flat_vector(loss_and_grads, shapes):
    """``loss_and_grads`` (list of arrays -> (loss, list of arrays)) on flat vectors.

    Parameters
    ----------
    loss_and_grads : callable, parameters as arrays of ``shapes`` -> (loss, gradients)
    shapes : the shapes of the parameter arrays, in order

    Returns
    -------
    callable, w (n,) -> (loss, g (n,)), with n the total size of ``shapes``
    """
    check_callable(loss_and_grads, "loss_and_grads")
    shapes = [tuple(s) for s in shapes]
    ends = np.cumsum([int(np.prod(s)) for s in shapes])

    def loss_and_grad(w):
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (ends[-1],):
            raise ValueError(f"w must have shape ({ends[-1]},), got {w.shape}")
        pieces = np.split(w, ends[:-1])
        loss, grads = loss_and_grads(
            [p.reshape(s) for p, s in zip(pieces, shapes, strict=True)]
        )
        return loss, flatten(grads)

    return loss_and_grad


def ics(grads_fn, params, layer, lr):
    """Internal covariate shift of ``layer`` (Santurkar et al., Definition 2.1).

    Parameters
    ----------
    grads_fn : callable, list of parameter arrays -> list of gradient arrays (same order)
        The gradient of the loss on one fixed batch.
    params : list of arrays in network order, input side first
    layer : int, the entry of ``params`` whose gradient is compared (the weights of
        layer i); every entry before it (the parameters of layers 0..i-1) takes its
        step, every entry from it on stays
    lr : float > 0, the step the earlier layers take

    Returns
    -------
    (distance, cosine) : ``||G - G'||_2`` and ``<G, G'> / (||G|| ||G'||)``
    """
    check_callable(grads_fn, "grads_fn")
    layer = check_int(layer, "layer")
    if not 0 <= layer < len(params):
        raise ValueError(f"layer must be in [0, {len(params)}), got {layer}")
    lr = check_positive(lr, "lr")
    grads = grads_fn(params)
    updated = [
        p - lr * g if j < layer else p
        for j, (p, g) in enumerate(zip(params, grads, strict=True))
    ]
    g_before = np.ravel(grads[layer])
    g_after = np.ravel(grads_fn(updated)[layer])
    distance = float(np.linalg.norm(g_before - g_after))
    norms = np.linalg.norm(g_before) * np.linalg.norm(g_after)
    cosine = float(g_before @ g_after / norms) if norms > 0 else float("nan")
    return distance, cosine


def landscape_along_gradient(loss_and_grad, w, lr, factors=(0.5, 1.0, 2.0, 3.0, 4.0)):
    """The loss and the gradient along the gradient direction (Santurkar et al., Fig. 4).

    Parameters
    ----------
    loss_and_grad : callable, flat parameters (n,) -> (loss, gradient (n,))
        Must not change the model (for batch norm: no update of moving statistics).
    w : array (n,), the current parameters
    lr : float > 0, the learning rate; the steps are ``eta = lr * factors``
    factors : positive numbers, the step multiples (theirs span [0.5, 4])

    Returns
    -------
    dict with ``eta`` (k,), ``loss`` (k,), ``grad_change`` (k,), and the scalars
    ``loss_at_w`` (the loss at ``w`` itself), ``loss_range`` (max - min of the
    losses), ``grad_change_range`` (max - min of the gradient changes) and
    ``beta_smoothness`` (max of grad change / step length).
    """
    check_callable(loss_and_grad, "loss_and_grad")
    lr = check_positive(lr, "lr")
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 1 or factors.size == 0 or np.any(factors <= 0):
        raise ValueError("factors must be a non-empty 1-D sequence of positive numbers")
    w = np.asarray(w, dtype=np.float64)
    loss_at_w, g = loss_and_grad(w)
    g = np.asarray(g, dtype=np.float64)
    if g.shape != w.shape:
        raise ValueError(
            f"the gradient must have the shape of w, {w.shape}, got {g.shape}"
        )
    g_norm = np.linalg.norm(g)
    if g_norm == 0:
        raise ValueError(
            "the gradient at w is zero: there is no direction to move along"
        )
    eta = lr * factors

    def at(step):
        loss, g_new = loss_and_grad(w - step * g)
        return loss, np.linalg.norm(np.asarray(g_new) - g)

    landscape = _along(at, eta, loss_at_w)
    distance = eta * g_norm  # how far each step moves w
    return {
        "eta": eta,
        **landscape,
        "beta_smoothness": _smoothness(landscape, distance),
    }


def relative_landscape(loss_and_grads, params, steps=(0.0025, 0.005, 0.01, 0.02)):
    """The loss and the gradient along the gradient, in units of each weight's norm.

    Every weight matrix ``W_l`` (each entry of ``params`` with ``ndim >= 2``) moves by
    the fraction ``eta`` of its own norm along its own gradient ``g_l``::

        W_l' = W_l - eta ||W_l|| g_l / ||g_l||

    while biases, gamma and beta stay. The measurement is made in the coordinates
    ``u_l = W_l / ||W_l||`` of the starting point, in which the gradient is
    ``G_l = ||W_l|| g_l`` and every matrix moves by ``||Delta u_l|| = eta``, so
    ``||Delta u|| = eta sqrt(m)`` for m matrices: the loss at each step, the gradient
    change ``||G(W') - G(W)||`` (the m matrices stacked) and the effective
    beta-smoothness ``max ||G(W') - G(W)|| / ||Delta u||``.

    Unlike :func:`landscape_along_gradient`, none of it depends on the scale of a
    matrix that feeds a batch-norm layer. Multiplying it by ``c > 0`` leaves the
    loss unchanged, ``L(c W) = L(W)``, so its gradient is divided by c; a step in
    units of ``||W||`` then lands on ``c W'``, where the loss is that at ``W'``,
    and ``G = ||W|| g`` is unchanged. (Exactly with batch norm's ``epsilon = 0``;
    with ``epsilon > 0`` up to terms of order epsilon / variance.)

    Parameters
    ----------
    loss_and_grads : callable, list of arrays shaped like ``params`` -> (loss, list
        of gradients in the same order). Must not change the model (for batch norm:
        no update of moving statistics), e.g.
        ``lambda p: bnbook.mlp.loss_and_grads(model, x, y, at=p)``.
    params : list of arrays, the starting point; those with ``ndim >= 2`` are the
        weight matrices, each of nonzero norm and nonzero gradient
    steps : positive numbers, the relative step sizes ``eta`` (0.01: each matrix
        moves by 1% of its norm)

    Returns
    -------
    dict with ``steps`` (k,), ``loss`` (k,), ``grad_change`` (k,), and the scalars
    ``loss_at_w`` and ``grad_norm`` (the loss and ``||G||`` at ``params``),
    ``loss_range`` (max - min of the losses), ``grad_change_range`` (max - min of
    the gradient changes) and ``beta_smoothness``.
    """
    check_callable(loss_and_grads, "loss_and_grads")
    params = _parameter_list(params)
    steps = as_float_array(steps, "steps")
    if (
        steps.ndim != 1
        or steps.size == 0
        or not np.all(np.isfinite(steps) & (steps > 0))
    ):
        raise ValueError("steps must be a non-empty 1-D sequence of positive numbers")
    loss_at_w, g = _checked_gradients(loss_and_grads, params)
    weights = _weight_matrices(params, g)  # the entries k of params that move
    norms = [np.linalg.norm(params[k]) for k in weights]  # ||W_l|| at the start

    def G(grads):  # the gradient in u_l = W_l / ||W_l||, matrices stacked
        return flatten([n * grads[k] for k, n in zip(weights, norms, strict=True)])

    def at(eta):
        loss, g_moved = _checked_gradients(
            loss_and_grads, relative_step(params, g, eta)
        )
        return loss, np.linalg.norm(G(g_moved) - G(g))

    landscape = _along(at, steps, loss_at_w)
    distance = steps * np.sqrt(len(weights))  # ||Delta u|| of each step
    return {
        "steps": steps,
        **landscape,
        "grad_norm": float(np.linalg.norm(G(g))),
        "beta_smoothness": _smoothness(landscape, distance),
    }


def relative_step(params, grads, eta):
    """Each weight matrix moved by the fraction ``eta`` of its norm along its gradient.

    ``W_l - eta ||W_l|| g_l / ||g_l||`` for every entry of ``params`` with ``ndim >= 2``
    (``grads`` in the same order and shapes); the others (biases, gamma, beta) stay.
    Returns a new list; ``params`` is not changed.
    """
    eta = check_positive(eta, "eta")
    if len(grads) != len(params):
        raise ValueError(
            f"grads must have one array per entry of params, got {len(grads)}"
        )
    return [
        p - eta * np.linalg.norm(p) * g / np.linalg.norm(g) if p.ndim >= 2 else p
        for p, g in zip(params, grads, strict=True)
    ]


def _along(at, steps, loss_at_w):
    """The loss and the gradient change ``at(step) -> (loss, change)`` at each step:
    a dict of ``loss`` and ``grad_change`` (k,), ``loss_at_w`` and the ranges."""
    losses, changes = [], []
    for step in steps:
        loss, change = at(step)
        losses.append(float(loss))
        changes.append(float(change))
    losses, changes = np.array(losses), np.array(changes)
    return {
        "loss": losses,
        "grad_change": changes,
        "loss_at_w": float(loss_at_w),
        "loss_range": float(losses.max() - losses.min()),
        "grad_change_range": float(changes.max() - changes.min()),
    }


def _smoothness(landscape, distance):
    """The effective beta-smoothness: the largest gradient change per distance."""
    return float(np.max(landscape["grad_change"] / distance))


def _parameter_list(params):
    """``params`` (a list or tuple of arrays) as a list of float arrays."""
    if not isinstance(params, list | tuple):
        raise TypeError(f"params must be a list of arrays, got {type(params).__name__}")
    return [as_float_array(p, f"params[{k}]") for k, p in enumerate(params)]


def _checked_gradients(loss_and_grads, params):
    """``loss_and_grads(params)``, its gradients checked to match ``params``."""
    loss, grads = loss_and_grads(params)
    grads = [np.asarray(g, dtype=np.float64) for g in grads]
    if [g.shape for g in grads] != [p.shape for p in params]:
        raise ValueError(
            "loss_and_grads must return one gradient per array of params, shaped like it"
        )
    return loss, grads


def _weight_matrices(params, grads):
    """The entries k of ``params`` with ``ndim >= 2``; each, and its gradient, must
    have a nonzero norm, or a step relative to them is undefined."""
    weights = [k for k, p in enumerate(params) if p.ndim >= 2]
    if not weights:
        raise ValueError("params must hold at least one weight matrix (ndim >= 2)")
    for k in weights:
        if np.linalg.norm(params[k]) == 0:
            raise ValueError(f"params[{k}] is zero: there is no scale to step in")
        if np.linalg.norm(grads[k]) == 0:
            raise ValueError(
                f"the gradient of params[{k}] is zero: there is no direction to move along"
            )
    return weights


def gradient_norm_bound(dy, cache):
    """Both sides of Santurkar et al.'s Theorem 4.1, per feature of one BN layer.

    For a feature with batch values ``x`` (m of them), normalized ``x_hat``, scale
    ``gamma`` and ``sigma^2 = var + epsilon``, and ``g = dy``, the gradient of the
    loss with respect to the layer's output ``y = gamma x_hat + beta``:

        lhs = ||dL/dx||^2
        rhs = gamma^2 / sigma^2 * (||g||^2 - <1, g>^2 / m - <g, x_hat>^2 / m)

    ``lhs <= rhs``, with equality when ``epsilon = 0``. ``rhs_printed`` is the right
    side with the last coefficient ``1/sqrt(m)``, as the paper prints it.

    Parameters
    ----------
    dy : array shaped like the layer's input, the gradient at its output
    cache : BatchNormCache of the forward pass (``BatchNorm.cache``)

    Returns
    -------
    dict of arrays of shape (C,): ``lhs``, ``rhs``, ``rhs_printed``
    """
    dx, _, _ = batch_norm_backward(dy, cache)  # checks dy and cache
    axes, x_hat = cache.reduce_axes, cache.x_hat
    m = x_hat.size // cache.inv_std.size
    g = np.asarray(dy, dtype=x_hat.dtype)
    scale = (cache.gamma * cache.inv_std).ravel() ** 2
    g_sq = (g**2).sum(axis=axes)
    along_one = g.sum(axis=axes) ** 2 / m
    along_x_hat = (g * x_hat).sum(axis=axes) ** 2
    return {
        "lhs": (dx**2).sum(axis=axes),
        "rhs": scale * (g_sq - along_one - along_x_hat / m),
        "rhs_printed": scale * (g_sq - along_one - along_x_hat / np.sqrt(m)),
    }


def drift(values):
    """How far each unit's batch statistic moves over training, per layer.

    ``values`` (checkpoints, layers, units): a batch statistic of each unit (its mean,
    or its standard deviation) at each checkpoint, the first at step 0. Returns
    (layers,): the standard deviation over the checkpoints after the first, averaged
    over the units.
    """
    values = _checkpoints(values, "values")
    return values[1:].std(axis=0).mean(axis=-1)


def spread_drift(stds):
    """:func:`drift` of each unit's batch standard deviation, relative to its size.

    ``stds`` (checkpoints, layers, units), the first at step 0. Returns (layers,): the
    standard deviation over the checkpoints after the first of each unit's standard
    deviation, divided by its mean over them, averaged over the units.
    """
    s = _checkpoints(stds, "stds")[1:]
    return (s.std(axis=0) / s.mean(axis=0)).mean(axis=-1)


def _checkpoints(values, name):
    """``values`` as a float array (checkpoints >= 2, layers, units)."""
    values = as_float_array(values, name)
    if values.ndim != 3 or values.shape[0] < 2:
        raise ValueError(
            f"{name} must have shape (checkpoints >= 2, layers, units), got {values.shape}"
        )
    return values


def deep_linear_regression(seed, d=10, n=1000):
    """Santurkar et al.'s task for the deep linear network: inputs ``x`` ~ N(0, I) of
    shape (n, d), and targets ``A x`` (n, d) for a random ``A`` (d, d) drawn from
    ``seed`` (with a stream of its own, not the initialization's)."""
    seed = check_int(seed, "seed", minimum=0)
    d = check_int(d, "d", minimum=1)
    n = check_int(n, "n", minimum=1)
    rng = np.random.default_rng([seed, 1])  # not the initialization's generator
    A = rng.normal(size=(d, d))
    x = rng.normal(size=(n, d))
    return x, x @ A.T
