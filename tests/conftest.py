"""Shared pytest fixtures: small real images from tests/data (see CREDITS.md)."""
import glob
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture(scope="session")
def data_dir() -> str:
    return DATA_DIR


@pytest.fixture(scope="session")
def real_images() -> list:
    """Ten real 256x256 RGB Hubble PNGs (uint8), sorted by name."""
    paths = sorted(glob.glob(os.path.join(DATA_DIR, "images", "*.png")))
    assert len(paths) >= 8, "test fixtures missing under tests/data/images"
    return paths


@pytest.fixture(scope="session")
def m51_fits() -> str:
    """HST WF/PC2 M51, 384x384 int32, gzipped FITS."""
    return os.path.join(DATA_DIR, "formats", "m51.fits.gz")
