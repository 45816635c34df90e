"""Measurements that each serve one chapter's experiments, apart from the library.

- :mod:`~bnbook.experiments.ioffe_figure1`: Ioffe and Szegedy's Figure 1 at small
  scale, the drift of sigmoid inputs with and without batch norm (chapter 1);
- :mod:`~bnbook.experiments.stepbystep`: gradients checked four ways, and the float32
  error of the one-pass and two-pass variance (chapter 3);
- :mod:`~bnbook.experiments.keras_warmup`: the moving-average warm-up of a Keras
  network, and calibration (chapter 4);
- :mod:`~bnbook.experiments.smoothness`: Santurkar et al.'s internal covariate shift,
  loss landscape and gradient predictiveness, and Theorem 4.1 (chapter 5);
- :mod:`~bnbook.experiments.meanfield`: Yang et al.'s gradient explosion at
  initialization, predicted and measured (chapter 7);
- :mod:`~bnbook.experiments.small_batches`: the small-batch grid's training, how far
  each layer moved, and the gradient share of the low-variance units (chapter 7b);
- :mod:`~bnbook.experiments.dynamics`: the angular update of scale-invariant weights
  (chapter 9);
- :mod:`~bnbook.experiments.noise_and_scale`: ghost batches, γ and β scaled, the
  variance shift of dropout before batch norm, and training only γ and β (chapter 9);
- :mod:`~bnbook.experiments.deep_networks`: rank collapse and the gradient, the
  residual stream's variance, SkipInit and zero γ trained (chapter 10);
- :mod:`~bnbook.experiments.normalizer_free`: Fixup's fixed update, rate sweeps, signal
  propagation and adaptive gradient clipping (chapter 10b);
- :mod:`~bnbook.experiments.depth`: how deep each network trains, at the largest rate
  that trains, Fixup without its stream biases, and the time of a step (chapter 10c);
- :mod:`~bnbook.experiments.after_training`: the moving statistics against the
  population's, the shifted digits, and averaged weights (chapter 11);
- :mod:`~bnbook.experiments.quantization`: a folded layer whose columns differ in
  scale at the same function, and its int8 error per channel and per tensor (11b).
"""
