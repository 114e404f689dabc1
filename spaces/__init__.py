"""Architecture configs, building blocks, the network builder, search spaces and the reference zoo."""

from spaces.builder import build_model, inference_config, inference_form
from spaces.config import ArchConfig
from spaces.search_space import SPACES, SearchSpace, get_space, reference_params
from spaces.zoo import PUBLISHED_PSNR, REFERENCES, get_reference

__all__ = [
    "ArchConfig", "build_model", "inference_form", "inference_config", "SPACES", "SearchSpace", "get_space",
    "reference_params", "REFERENCES", "PUBLISHED_PSNR", "get_reference",
]
