"""Architecture configs, building blocks, the network builder, search spaces and the reference zoo."""

from spaces.builder import Architecture, build_model, inference_config, inference_form, measured_form
from spaces.config import ArchConfig
from spaces.kit import KitEntry, get_entry, read_kit
from spaces.model_file import DataRange, ModelFile, ModelFileError, NativeDtype, check_x4
from spaces.recipe import Prepared, prepare
from spaces.search_space import SPACES, SearchSpace, get_space, reference_params
from spaces.zoo import REFERENCES, Published, Reference, get_reference, get_reference_record

__all__ = [
    "ArchConfig", "Architecture", "ModelFile", "ModelFileError", "NativeDtype", "DataRange", "check_x4", "KitEntry",
    "read_kit", "get_entry", "build_model", "measured_form", "inference_form", "inference_config", "Prepared",
    "prepare", "SPACES", "SearchSpace", "get_space", "reference_params", "REFERENCES", "Published", "Reference",
    "get_reference", "get_reference_record",
]
