"""artifact_removal: remove JPEG compression artifacts with a fast MobileNetV3 U-Net trained by the NoGAN recipe."""
__version__ = '0.1.0'

from .degrade import JPEGDegradation, jpeg_compress
from .data import get_critic_dls, get_pair_dls
from .models import GENERATOR_CONFIGS, create_critic, create_generator
from .losses import CombinedLoss, PerceptualLoss, create_loss
from .metrics import psnr, psnr_b, ssim, STLPIPS
from .nogan import QUICK, NoGANConfig, run_nogan
from .restore import Restorer, get_transformed_image, plot_transformed_image, restore_image
from .registry import download_model, list_models
from .export import export_onnx
from .video import restore_video
