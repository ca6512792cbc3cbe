"""Datasets as uint8 NCHW arrays: MNIST-like IDX, CIFAR, npz files and a synthetic set, with checked downloads."""
from .dataset import DATASETS, Dataset, split_sizes, split_train_val
from .download import SOURCES, verify_dataset
from .loading import (
    dataset_names,
    dataset_shape,
    load_dataset,
    same_split,
    train_images,
)
from .paths import resolve_data_dir

__all__ = [
    "DATASETS", "Dataset", "SOURCES", "dataset_names", "dataset_shape", "load_dataset", "resolve_data_dir",
    "same_split", "split_sizes", "split_train_val", "train_images", "verify_dataset",
]
