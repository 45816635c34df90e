"""Checks for the workbook: they run the reader's batch norm and say what is wrong.

Each check feeds the reader's code inputs it chooses (float64 and float32, a small and
a large ε, a feature with a large mean in float32) and compares the outputs with the
package's validated batch norm. When an output is wrong, the check compares it with
the outputs of known wrong formulas (ε missing, the unbiased variance, a gradient path
missing...) and names the one it matches; otherwise it says which property failed, on
which input, expected against received. A right implementation gets one printed line.

- :func:`check_forward`: ``forward(x, gamma, beta, eps) -> (y, cache)``, x (N, D);
- :func:`check_backward`: ``backward(dy, cache) -> (dx, dgamma, dbeta)``;
- :func:`check_spatial_forward`: ``forward`` for x (N, H, W, C), per channel;
- :func:`check_layer`: a layer class with Keras's defaults and moving statistics;
- :func:`check_trainable_layer`: the same layer with ``backward`` and ``params()``.

When a check fails, the traceback shows the reader's own lines and one line of the
check: a check raises its CheckFailed afresh from one short frame (``_reported``), and
the frame that calls the reader's code carries ``__tracebackhide__``, which IPython
skips.

The modules: ``report`` (CheckFailed, the short traceback, how outputs are compared
and differences told), ``cases`` (the inputs), ``calls`` (calling the reader's code),
``reference`` (the right forward pass and its knobs, computed here), the known mistakes
(``forward_mistakes``, ``backward_mistakes``, ``layer_mistakes``), and the checks
(``forward``, ``backward`` with ``staged`` for a staged backward's intermediate
gradients, ``layer`` with ``moving`` for the moving statistics, ``trainable``).
"""

from bnbook.workbook.backward import check_backward
from bnbook.workbook.forward import check_forward, check_spatial_forward
from bnbook.workbook.layer import check_layer
from bnbook.workbook.report import CheckFailed
from bnbook.workbook.trainable import check_trainable_layer

__all__ = [
    "CheckFailed",
    "check_backward",
    "check_forward",
    "check_layer",
    "check_spatial_forward",
    "check_trainable_layer",
]
