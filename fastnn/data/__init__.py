"""Loading and preparing MNIST-style data: IDX files, Kaggle CSVs, downloads, splits."""

from .datasets import CLASS_NAMES, DATASET_NAMES, Dataset, find_dataset_files, load_dataset
from .idx import DataError, read_idx
from .kaggle import read_kaggle_csv, write_kaggle_submission
from .preprocess import scale, shuffle, train_dev_split

__all__ = [
    "CLASS_NAMES",
    "DATASET_NAMES",
    "DataError",
    "Dataset",
    "find_dataset_files",
    "load_dataset",
    "read_idx",
    "read_kaggle_csv",
    "write_kaggle_submission",
    "scale",
    "shuffle",
    "train_dev_split",
]
