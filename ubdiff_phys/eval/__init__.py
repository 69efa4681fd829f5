"""Evaluation: reconstruction metrics (specs/ubdiff.md §5), the Fréchet distance and FlatVel-A
structure statistics."""

from ubdiff_phys.eval.frechet import frechet_distance, gaussian_stats
from ubdiff_phys.models.metrics import MetricAccumulator, mae, mse, rmse, ssim, ssim_map

__all__ = [
    "MetricAccumulator",
    "frechet_distance",
    "gaussian_stats",
    "mae",
    "mse",
    "rmse",
    "ssim",
    "ssim_map",
]

from ubdiff_phys.eval.features import (  # noqa: E402
    FeatureConfig,
    FeatureExtractor,
    load_feature_extractor,
    train_feature_network,
)
from ubdiff_phys.eval.inversionnet_file import load_inversionnet, save_inversionnet  # noqa: E402
from ubdiff_phys.eval.protocol import (  # noqa: E402
    ProtocolConfig,
    ProtocolResult,
    evaluate_inversion,
    run_protocol,
    train_inversionnet,
)

__all__ += [
    "FeatureConfig",
    "FeatureExtractor",
    "ProtocolConfig",
    "ProtocolResult",
    "evaluate_inversion",
    "load_feature_extractor",
    "load_inversionnet",
    "run_protocol",
    "save_inversionnet",
    "train_feature_network",
    "train_inversionnet",
]

from ubdiff_phys.eval.structure import (  # noqa: E402
    LayerStructure,
    PCABasis,
    layer_structure,
    pca_basis,
    pca_frechet,
    pca_frechet_floor,
)

__all__ += [
    "LayerStructure",
    "PCABasis",
    "layer_structure",
    "pca_basis",
    "pca_frechet",
    "pca_frechet_floor",
]
