"""Training-free and fine-tuning activation sparsifiers for decoder LLMs.

Recipes next to DSTF's (``accelsim.train``), for the inputs of the linear layers of a
decoder (:func:`~accelsim.sparsify.common.sparsified_layers`):

- :mod:`~accelsim.sparsify.teal`: TEAL-style magnitude thresholding (Liu et al. 2024):
  per-layer thresholds calibrated on sample text to a target sparsity, no training;
- :mod:`~accelsim.sparsify.prosparse`: ReLU-fication with a progressive L1 penalty on the
  MLP's intermediate activations (ProSparse, Song et al. 2024);
- :mod:`~accelsim.sparsify.tl1`: DSTF's Transformed-L1 penalty on the inputs of every
  sparsified linear layer (fine-tuning), then thresholds calibrated as TEAL's.

Each returns a :class:`~accelsim.sparsify.common.SparsityReport`: the sparsity reached
per layer and the perplexity on the evaluation text (and the dense model's).
"""
from accelsim.sparsify.common import SparsityReport, measure_sparsity, perplexity, sparsified_layers
from accelsim.sparsify.prosparse import prosparse
from accelsim.sparsify.teal import ThresholdHooks, calibrate_thresholds, teal
from accelsim.sparsify.tl1 import tl1_finetune

__all__ = ["SparsityReport", "measure_sparsity", "perplexity", "sparsified_layers", "prosparse",
           "ThresholdHooks", "calibrate_thresholds", "teal", "tl1_finetune"]
