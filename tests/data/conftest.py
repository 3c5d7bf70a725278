"""Dataset files in their real formats, written once per test session from scikit-learn's digits.

The session-wide copies are for tests that only read them; a test that damages files
writes its own copy into ``tmp_path`` with the same ``tests.fixtures_data`` writers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures_data import write_cifar10, write_cifar100, write_image_folder, write_mnist_idx


@pytest.fixture(scope="session")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``data_dir`` holding ``MNIST/raw/`` IDX files (1,500 train, 297 test digits, 28x28)."""
    root = tmp_path_factory.mktemp("mnist")
    write_mnist_idx(root)
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``data_dir`` holding ``cifar-10-batches-py/`` and ``cifar-100-python/`` (1,500 train, 297 test, 32x32 RGB)."""
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root)
    write_cifar100(root)
    return root


@pytest.fixture(scope="session")
def image_folder_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``data_dir`` with ``train/`` (6 per class) and ``val/`` (3 per class) PNG/JPEG files, 10 classes."""
    return write_image_folder(tmp_path_factory.mktemp("imagefolder"))
