"""Batch normalization with the math only: no argument checks, no options.

The two functions chapter 3 opens with, before the validated ones of
:mod:`bnbook.batchnorm`. They take the workbook's signatures, so
:mod:`bnbook.workbook`'s checks run on them too. x has shape (N, D): D features, each
normalized over the N examples of the batch.
"""

import numpy as np

__all__ = ["backward", "forward"]


def forward(x, gamma, beta, eps):
    """y = gamma * x_hat + beta, x_hat = (x - mu) / sqrt(var + eps); shapes:
    x (N, D), gamma and beta (D,). Returns y (N, D) and the cache for backward."""
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    y = gamma * x_hat + beta
    return y, (x_hat, inv_std, gamma)


def backward(dy, cache):
    """dx, dgamma, dbeta from dy (N, D), with means over the batch:
    dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))."""
    x_hat, inv_std, gamma = cache
    dbeta = dy.sum(axis=0)
    dgamma = (dy * x_hat).sum(axis=0)
    mean_dy = dy.mean(axis=0)
    mean_dy_x_hat = (dy * x_hat).mean(axis=0)
    dx = gamma * inv_std * (dy - mean_dy - x_hat * mean_dy_x_hat)
    return dx, dgamma, dbeta
