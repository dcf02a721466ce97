"""Data: datasets held as uint8 tensors with a device-side loader, or streamed from files by workers."""
from .aux import Aux, AuxSplit, open_aux
from .datasets import DATASETS, Data, default_data_dir, list_datasets, load_data
from .loader import Augment, Loader, Split, augment_batch, random_crop
from .plan import BatchPlan
from .stream import Stream, StreamData, StreamLoader

__all__ = ["DATASETS", "Augment", "Aux", "AuxSplit", "BatchPlan", "Data", "Loader", "Split", "Stream", "StreamData",
           "StreamLoader", "augment_batch", "default_data_dir", "list_datasets", "load_data", "open_aux",
           "random_crop"]
