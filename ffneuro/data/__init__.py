"""Datasets as uint8 NCHW arrays: MNIST-like IDX, CIFAR, npz files and a synthetic set, with checked downloads."""
from .dataset import DATASETS, Dataset, split_sizes, split_train_val
from .download import SOURCES, verify_dataset
from .loading import (
    data_source,
    dataset_names,
    dataset_shape,
    load_dataset,
    load_from_source,
    same_split,
    train_images,
)
from .paths import resolve_data_dir

__all__ = [
    "DATASETS", "Dataset", "SOURCES", "data_source", "dataset_names", "dataset_shape", "load_dataset",
    "load_from_source", "resolve_data_dir", "same_split", "split_sizes", "split_train_val", "train_images",
    "verify_dataset",
]
