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
"""

import numpy as np

__all__ = ["ics", "landscape_along_gradient"]


def _flat(arrays):
    return np.concatenate([np.ravel(a) for a in arrays])


def ics(grads_fn, params, layer, lr):
    """Internal covariate shift of ``layer`` (Santurkar et al., Definition 2.1).

    Parameters
    ----------
    grads_fn : callable, list of parameter arrays -> list of gradient arrays (same order)
        The gradient of the loss on one fixed batch.
    params : list of arrays, one entry per layer (``params[i]`` is layer i's weights)
    layer : int, the layer i whose gradient is compared (0 <= layer < len(params))
    lr : float > 0, the step the earlier layers take

    Returns
    -------
    (distance, cosine) : ``||G - G'||_2`` and ``<G, G'> / (||G|| ||G'||)``
    """
    if not callable(grads_fn):
        raise TypeError(f"grads_fn must be callable, got {type(grads_fn).__name__}")
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise TypeError(f"layer must be an int, got {type(layer).__name__}")
    if not 0 <= layer < len(params):
        raise ValueError(f"layer must be in [0, {len(params)}), got {layer}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
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
    ``loss_range`` (max - min of the losses), ``grad_change_range`` (max - min of
    the gradient changes) and ``beta_smoothness`` (max of grad change / step length).
    """
    if not callable(loss_and_grad):
        raise TypeError(
            f"loss_and_grad must be callable, got {type(loss_and_grad).__name__}"
        )
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 1 or factors.size == 0 or np.any(factors <= 0):
        raise ValueError("factors must be a non-empty 1-D sequence of positive numbers")
    w = np.asarray(w, dtype=np.float64)
    _, g = loss_and_grad(w)
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
    losses, changes = [], []
    for step in eta:
        loss, g_new = loss_and_grad(w - step * g)
        losses.append(float(loss))
        changes.append(float(np.linalg.norm(np.asarray(g_new) - g)))
    losses, changes = np.array(losses), np.array(changes)
    return {
        "eta": eta,
        "loss": losses,
        "grad_change": changes,
        "loss_range": float(losses.max() - losses.min()),
        "grad_change_range": float(changes.max() - changes.min()),
        "beta_smoothness": float(np.max(changes / (eta * g_norm))),
    }
