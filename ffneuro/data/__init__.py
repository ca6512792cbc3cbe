"""Datasets as uint8 NCHW arrays: MNIST-like IDX, CIFAR, npz files and a synthetic set, with checked downloads."""
from .dataset import DATASETS, Dataset, split_train_val
from .download import SOURCES, verify_dataset
from .loading import data_source, dataset_names, dataset_shape, load_dataset, load_from_source
from .paths import resolve_data_dir

__all__ = [
    "DATASETS", "Dataset", "SOURCES", "data_source", "dataset_names", "load_from_source", "dataset_shape", "load_dataset", "resolve_data_dir",
    "split_train_val", "verify_dataset",
]
