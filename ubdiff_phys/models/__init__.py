"""Models: UB-Diff's 1-in-2-out autoencoder (encoders, modality heads, decoders), the 1-D U-Net
latent denoiser, InversionNet (the evaluation protocol's inversion network) and Inception-v3 (for
Fréchet distances with user-supplied Inception weights).

``build_autoencoder(AutoencoderConfig(...))`` builds the paper configuration (official 2-token ViT
+ Linear seismic decoder) by default; ``seismic_decoder="token"`` gives the small token decoder.
``load_autoencoder_model(path)`` rebuilds a trained autoencoder from its checkpoint alone
(:mod:`.checkpoint`).
"""

from ubdiff_phys.models.autoencoder import (
    AutoencoderConfig,
    UBDiffAutoencoder,
    build_autoencoder,
    count_parameters,
)
from ubdiff_phys.models.checkpoint import (
    AUTOENCODER_CHECKPOINT_FORMAT,
    autoencoder_from_checkpoint,
    load_autoencoder_checkpoint,
    load_autoencoder_model,
)
from ubdiff_phys.models.decoders import PaperSeismicDecoder, TokenSeismicDecoder, VelocityDecoder
from ubdiff_phys.models.encoders import SeismicEncoder, VelocityEncoder
from ubdiff_phys.models.inception import InceptionV3, inception_from_state_dict
from ubdiff_phys.models.inversionnet import InversionNet
from ubdiff_phys.models.unet1d import UNet1D, UNet1DConfig, build_unet1d

__all__ = [
    "AUTOENCODER_CHECKPOINT_FORMAT",
    "AutoencoderConfig",
    "InceptionV3",
    "InversionNet",
    "PaperSeismicDecoder",
    "SeismicEncoder",
    "TokenSeismicDecoder",
    "UBDiffAutoencoder",
    "UNet1D",
    "UNet1DConfig",
    "VelocityDecoder",
    "VelocityEncoder",
    "autoencoder_from_checkpoint",
    "build_autoencoder",
    "build_unet1d",
    "count_parameters",
    "inception_from_state_dict",
    "load_autoencoder_checkpoint",
    "load_autoencoder_model",
]
