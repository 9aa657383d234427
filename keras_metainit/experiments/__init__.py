"""The one experiment harness of the demo, ``benchmarks/`` and ``examples/``.

- :mod:`~keras_metainit.experiments.models`: every network trained (plain MLP and CNNs, residual
  nets without normalization, Fixup, Post-LN / Pre-LN Transformer encoder);
- :mod:`~keras_metainit.experiments.data`: Fashion-MNIST (full or bundled) and synthetic
  sequence tasks;
- :mod:`~keras_metainit.experiments.training`: the training loop with a budget (steps or epochs,
  warmup, clipping), divergence detection, compiled-model reuse;
- :mod:`~keras_metainit.experiments.stats`: the statistics convention (sample std) and the
  verdict rule (a difference counts beyond two standard errors of the difference);
- :mod:`~keras_metainit.experiments.contenders`: the rows (Keras default, He, the suite's
  methods and chains, AnyInit, Fixup, WN init, Transformer inits, references);
- :mod:`~keras_metainit.experiments.runner`: a table of rows over seeds, its summary, its
  verdicts.

Importing this package imports Keras (and TensorFlow through it).
"""
