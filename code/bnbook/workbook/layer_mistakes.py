"""The known wrong outputs of a layer, each with the message that names it:
``(message, formula)`` pairs, ``formula(case)`` the wrong y in float64, of x's shape
(N, D), for an inference call and for a training call."""

from bnbook.workbook.forward_mistakes import _forward_mistakes
from bnbook.workbook.moving import _moving
from bnbook.workbook.reference import KERAS, _inference, _y


def _inference_mistakes(mean, variance, built):
    """(message, formula) for the typical wrong inference-mode outputs."""
    eps = built.epsilon
    return [
        (
            "in inference it normalizes with the batch's own statistics; use "
            "moving_mean and moving_variance.",
            _y,  # the case carries the layer's epsilon
        ),
        *_ignored_epsilon(built, lambda c, e: _inference(c, mean, variance, e)),
        (
            "in inference it does not subtract moving_mean: "
            "y = gamma * (x - moving_mean) / sqrt(moving_variance + epsilon) + beta.",
            lambda c: _inference(c, 0.0, variance, eps),
        ),
        (
            "in inference it matches epsilon 1e-5 (PyTorch's default); Keras's "
            "is 1e-3.",
            lambda c: _inference(c, mean, variance, 1e-5),
        ),
        (
            "in inference it divides by sqrt(moving_variance) without epsilon, or not "
            "at all (the same while moving_variance is 1): y = gamma * (x - moving_mean)"
            " / sqrt(moving_variance + epsilon) + beta.",
            lambda c: _inference(c, mean, variance, 0.0),
        ),
        (  # both mistakes: the first inference call, on a new layer, fails, and there
            # sqrt(moving_variance) + epsilon = moving_variance + epsilon = 1 + epsilon
            "in inference it divides by sqrt(moving_variance) + epsilon or by "
            "moving_variance + epsilon (the same while moving_variance is 1): divide "
            "by sqrt(moving_variance + epsilon).",
            lambda c: _inference(c, mean, variance, eps, outside=True),
        ),
        (
            "in inference β is not added: y = gamma * x_hat + beta.",
            lambda c: _inference(c, mean, variance, eps) - c.beta,
        ),
        (
            "in inference x_hat is not scaled by γ: y = gamma * x_hat + beta.",
            lambda c: (_inference(c, mean, variance, eps) - c.beta) / c.gamma + c.beta,
        ),
        (
            "in inference γ and β are swapped: y = gamma * x_hat + beta.",
            lambda c: _inference(c, mean, variance, eps, swap=True),
        ),
    ]


def _ignored_epsilon(built, formula):
    """The mistake of a layer built with another epsilon that uses Keras's default."""
    if built.epsilon == KERAS["epsilon"]:
        return []
    return [
        (
            f"it matches epsilon {KERAS['epsilon']:g}, Keras's default, not the "
            f"epsilon={built.epsilon:g} it was built with: use self.epsilon.",
            lambda c: formula(c, KERAS["epsilon"]),
        )
    ]


def _training_mistakes(built, before, case):
    """(message, formula) for a wrong y of a training call on ``case``: the moving
    statistics used (``before`` the call, or after it), a wrong ε, or a wrong forward
    pass."""
    layer = built.layer
    return [
        (
            "with training=True it normalizes with the moving statistics; use the "
            "batch's mean and variance.",
            lambda c: _inference(c, *before.values(), built.epsilon),
        ),
        (
            "with training=True it normalizes with the moving statistics just "
            "updated; use the batch's mean and variance.",
            lambda c: _inference(c, *_moving(layer).values(), built.epsilon),
        ),
        *_ignored_epsilon(built, lambda c, e: _y(c, eps=e)),
        (
            "it matches epsilon 1e-5 (PyTorch's default); Keras's is 1e-3.",
            lambda c: _y(c, eps=1e-5),
        ),
        *_forward_mistakes(case),
    ]
