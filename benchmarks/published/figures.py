"""Published zero-skipping results and the operand densities those papers report.

Each :class:`PublishedFigure` says what was measured, against what, and where the number comes
from. ``checked`` records how it was confirmed for this project: the text it was read in (an
abstract, or a review quoting the paper) or ``"not re-checked"`` where only memory of the paper
backs it. The densities feed the statistical traces of ``reproduce.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PublishedFigure:
    key: str
    design: str            # what accelsim runs (shipped hardware file, or a twin of it)
    metric: str
    value: float
    source: str            # paper and place in it
    checked: str           # how this project confirmed the number
    value_range: tuple[float, float] | None = None
    networks: str = ""
    notes: str = ""


CNVLUTIN_SPEEDUP = PublishedFigure(
    key="cnvlutin_speedup",
    design="hw_configs/cnvlutin_like.yaml vs its dense twin",
    metric="speedup over a dense DaDianNao-style accelerator, zero activations skipped",
    value=1.37, value_range=(1.24, 1.55),
    source="Albericio et al., Cnvlutin: Ineffectual-Neuron-Free Deep Neural Network Computing, "
           "ISCA 2016 (doi:10.1109/ISCA.2016.11), abstract",
    checked="abstract text (doi.org record of the paper): 'from 1.24x to 1.55x and by 1.37x on "
            "average without any loss in accuracy'",
    networks="alexnet, google, nin, vgg19, cnnM, cnnS (ImageNet)",
    notes="conv layers; zero-valued input neurons only (no weight skipping)")

SCNN_SPEEDUP = PublishedFigure(
    key="scnn_speedup",
    design="hw_configs/sparten_like.yaml vs its dense twin",
    metric="performance over a comparably provisioned dense accelerator (DCNN)",
    value=2.7,
    source="Parashar et al., SCNN: An Accelerator for Compressed-sparse Convolutional Neural "
           "Networks, ISCA 2017 (arXiv:1708.04485), abstract",
    checked="abstract text (arXiv and paperswithcode copies)",
    networks="AlexNet, GoogLeNet, VGGNet, weights pruned as in Han et al. 2015",
    notes="both zero weights and zero activations skipped (Cartesian-product dataflow)")

SCNN_ENERGY = PublishedFigure(
    key="scnn_energy",
    design="hw_configs/sparten_like.yaml vs its dense twin",
    metric="energy improvement (dense energy / sparse energy) over DCNN",
    value=2.3,
    source=SCNN_SPEEDUP.source, checked=SCNN_SPEEDUP.checked, networks=SCNN_SPEEDUP.networks)

SPARTEN_SPEEDUP = PublishedFigure(
    key="sparten_speedup",
    design="hw_configs/sparten_like.yaml vs its dense twin",
    metric="speedup over a dense architecture (average)",
    value=4.7,
    source="Gondimalla et al., SparTen: A Sparse Tensor Accelerator for Convolutional Neural "
           "Networks, MICRO 2019 (doi:10.1145/3352460.3358291), abstract",
    checked="abstract text: 'SparTen performs 4.7x, 1.8x, and 3x better than a dense "
            "architecture, one-sided sparse architecture, and SCNN'",
    networks="AlexNet, VGGNet, GoogLeNet (pruned)",
    notes="inner join of bitmasks per compute unit; greedy filter balancing not modelled")

SPARTEN_VS_ONE_SIDED = PublishedFigure(
    key="sparten_vs_one_sided",
    design="sparten_like.yaml vs the same file skipping zero activations only",
    metric="speedup of two-sided over one-sided skipping",
    value=1.8, source=SPARTEN_SPEEDUP.source, checked=SPARTEN_SPEEDUP.checked,
    networks=SPARTEN_SPEEDUP.networks)

EYERISS_PE_POWER = PublishedFigure(
    key="eyeriss_pe_power",
    design="hw_configs/eyeriss_v1.yaml vs the same file with gating off",
    metric="PE power saved by data gating of zero input activations (no speedup)",
    value=0.45,
    source="Chen, Krishna, Emer, Sze, Eyeriss: An Energy-Efficient Reconfigurable Accelerator "
           "for Deep Convolutional Neural Networks, IEEE JSSC 52(1), 2017, section V-C (PE and "
           "data gating)",
    checked="two reviews quoting the paper: 'data gating ... disabling unnecessary filter reads "
            "and MAC operations, reducing power consumption by up to 45%' "
            "(agastyaseth.github.io review, 2024) and 'zero skipping at run-time can reduce "
            "power by 45%' (a GitHub paper list); the JSSC text itself was not reachable",
    networks="AlexNet CONV layers",
    notes="gating keeps the cycle; the MAC and the filter scratchpad read are skipped")

FIGURES = (CNVLUTIN_SPEEDUP, SCNN_SPEEDUP, SCNN_ENERGY, SPARTEN_SPEEDUP, SPARTEN_VS_ONE_SIDED,
           EYERISS_PE_POWER)


@dataclass(frozen=True)
class DensityModel:
    """Operand densities (fraction non-zero) for one network, with their provenance."""

    network: str
    act: dict = field(default_factory=dict)       # layer -> density, '*' default
    weight: dict = field(default_factory=dict)
    source: str = ""


#: Cnvlutin measured 44% zero input neurons on average over its networks' conv layers, i.e. an
#: activation density of 0.56. Quoted by Shi & Chu, arXiv:1704.07724, section 1 ("the inputs of
#: convolutional layers are on average 44% zeros"), citing Albericio et al. The first layer's
#: input is the image, which is dense.
ACT_DENSITY = 0.56
ACT_SOURCE = ("Albericio et al. ISCA 2016: 44% zero conv inputs on average (as quoted in "
              "arXiv:1704.07724 section 1); the network input (first layer) is dense")

#: Weights remaining after Han et al.'s magnitude pruning ("Learning both Weights and Connections
#: for Efficient Neural Networks", NeurIPS 2015, Table 4 for AlexNet, Table 5 for VGG-16), which
#: SCNN and SparTen use. Values as we know them from the paper; only its abstract (9x fewer AlexNet
#: parameters, 13x fewer VGG-16 parameters) was re-read here. Mapped onto the torchvision layer
#: names by position (torchvision's AlexNet has 64/192/384/256/256 filters, the paper's 96/256/
#: 384/384/256).
HAN_ALEXNET_WEIGHTS = {"features.0": 0.84, "features.3": 0.38, "features.6": 0.35,
                       "features.8": 0.37, "features.10": 0.37, "classifier.1": 0.09,
                       "classifier.4": 0.09, "classifier.6": 0.25}
HAN_VGG16_WEIGHTS = {"features.0": 0.58, "features.2": 0.22, "features.5": 0.34,
                     "features.7": 0.36, "features.10": 0.53, "features.12": 0.24,
                     "features.14": 0.42, "features.17": 0.32, "features.19": 0.27,
                     "features.21": 0.34, "features.24": 0.35, "features.26": 0.29,
                     "features.28": 0.36, "classifier.0": 0.01, "classifier.3": 0.02,
                     "classifier.6": 0.09}
HAN_SOURCE = ("Han et al. NeurIPS 2015, Table 4 (AlexNet) / Table 5 (VGG-16), weights remaining "
              "after pruning (not re-checked here: only the abstract was reachable)")

FIRST_LAYER = {"alexnet": "features.0", "vgg16": "features.0", "resnet18": "conv1"}


def activation_density(network: str) -> dict:
    """0.56 everywhere but the network input (dense)."""
    return {FIRST_LAYER[network]: 1.0, "*": ACT_DENSITY}


def pruned_weight_density(network: str) -> dict:
    """Han et al.'s per-layer weight densities for ``network`` (alexnet or vgg16)."""
    table = {"alexnet": HAN_ALEXNET_WEIGHTS, "vgg16": HAN_VGG16_WEIGHTS}
    if network not in table:
        raise KeyError(f"no published pruned weight densities for {network!r} "
                       f"(have: {', '.join(table)})")
    return dict(table[network])
