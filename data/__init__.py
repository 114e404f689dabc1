"""Training and validation images for x4 super-resolution: DIV2K and DIV2K_LSDIR folders, the embedded
photographs, MATLAB-compatible bicubic degradation and random patch batches.

Everything is decoded once into memory as uint8 RGB; LR images absent from disk are made the way
DIV2K's were (MATLAB `imresize(hr, 1/4, 'bicubic')` after cropping HR to a multiple of 4).
"""

from data.bicubic import bicubic_downscale, bicubic_upscale, crop_to_multiple
from data.dataset import (SCALE, DataError, ImagePair, SRDataset, check_validation_sizes, to_tensor,
                          to_uint8_tensor)
from data.div2k import load_div2k, read_image
from data.embedded import load_embedded
from data.load import load_dataset
from data.patches import PatchStream, check_patch_size, patch_batches, sample_batch

__all__ = [
    "SCALE", "DataError", "ImagePair", "SRDataset", "check_validation_sizes", "to_tensor", "to_uint8_tensor",
    "bicubic_downscale", "bicubic_upscale", "crop_to_multiple", "load_div2k", "read_image", "load_embedded", "load_dataset",
    "PatchStream", "check_patch_size", "patch_batches", "sample_batch",
]
