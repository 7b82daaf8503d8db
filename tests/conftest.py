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
def make_prepared(real_images, tmp_path_factory):
    """`make_prepared(n_train, n_dev=0)`: a new folder in `data.prepare`'s layout holding the first
    `n_train` real images in train/ and the next `n_dev` in dev/ (no dev/ when 0); returns its path."""
    import shutil

    def make(n_train: int, n_dev: int = 0) -> str:
        root = tmp_path_factory.mktemp("prepared")
        for split, paths in (("train", real_images[:n_train]), ("dev", real_images[n_train:n_train + n_dev])):
            if paths:
                os.makedirs(root / split)
                for p in paths:
                    shutil.copy(p, root / split)
        return str(root)

    return make


@pytest.fixture(scope="session")
def m51_fits() -> str:
    """HST WF/PC2 M51, 384x384 int32, gzipped FITS."""
    return os.path.join(DATA_DIR, "formats", "m51.fits.gz")


@pytest.fixture(scope="session")
def tiny_exports(tmp_path_factory) -> dict:
    """Small freshly initialised colouriser and SR generator, exported as SavedModels.

    Real exports through each package's own export code, so the pipeline tests
    exercise exactly what a user's exported models look like.
    """
    import keras

    from colorize.model import build_colorizer
    from colorize.saved_model import export_colorizer
    from srgan.saved_model import export_saved_model
    from srgan.model import build_generator

    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("exports")
    colorize_dir = export_colorizer(
        build_colorizer(backbone_weights=None), str(root / "colorize"), config={"size": 64}, trained=False
    )
    generator = build_generator(num_blocks=1, filters=8, scale=4)
    srgan_dir = export_saved_model(generator, str(root / "srgan"), {"num_blocks": 1, "filters": 8, "scale": 4,
                                                                    "trained": False})
    return {"colorize": colorize_dir, "srgan": srgan_dir}


@pytest.fixture()
def corpus(tmp_path, data_dir, real_images, m51_fits):
    """The bad-input corpus (`tests/bad_corpus.py`) in a fresh folder: (folder, {name: expected outcome})."""
    from bad_corpus import make_corpus

    folder = tmp_path / "corpus"
    expected = make_corpus(
        str(folder), real_images[0], m51_fits,
        os.path.join(data_dir, "formats", "palette_p33423.png"), os.path.join(data_dir, "formats", "rgba_u1810.png"),
    )
    return folder, expected
