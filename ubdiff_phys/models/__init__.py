"""Models: UB-Diff's 1-in-2-out autoencoder (encoders, modality heads, decoders).

``build_autoencoder(AutoencoderConfig(...))`` builds the paper configuration (official 2-token ViT
+ Linear seismic decoder) by default; ``seismic_decoder="token"`` gives the small token decoder.
"""

from ubdiff_phys.models.autoencoder import (
    AutoencoderConfig,
    UBDiffAutoencoder,
    build_autoencoder,
    count_parameters,
)
from ubdiff_phys.models.decoders import PaperSeismicDecoder, TokenSeismicDecoder, VelocityDecoder
from ubdiff_phys.models.encoders import SeismicEncoder, VelocityEncoder

__all__ = [
    "AutoencoderConfig",
    "PaperSeismicDecoder",
    "SeismicEncoder",
    "TokenSeismicDecoder",
    "UBDiffAutoencoder",
    "VelocityDecoder",
    "VelocityEncoder",
    "build_autoencoder",
    "count_parameters",
]
