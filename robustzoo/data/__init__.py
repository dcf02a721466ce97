"""Data: datasets held as uint8 tensors, a device-side loader with augmentation."""
from .datasets import DATASETS, Data, default_data_dir, list_datasets, load_data
from .loader import Augment, Loader, Split, augment_batch, random_crop

__all__ = ["DATASETS", "Augment", "Data", "Loader", "Split", "augment_batch", "default_data_dir",
           "list_datasets", "load_data", "random_crop"]
