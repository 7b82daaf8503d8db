"""The evaluation's picture LR and working-size resize (the operators training uses), and the split folders."""
import numpy as np
import pytest
import tensorflow as tf

from data.colour import rgb_to_yuv
from data.io import read_image
from data.splits import split_files
from pipeline.evaluation import make_lr, to_size


def test_make_lr_is_antialiased_bicubic_on_8_bit_levels(real_images):
    hr = read_image(real_images[0])[:48, :40]
    lr = make_lr(hr, 4)
    assert lr.shape == (12, 10, 3) and lr.dtype == np.float32
    reference = tf.image.resize(hr[None], (12, 10), "bicubic", antialias=True)[0].numpy()
    expected = np.round(np.clip(reference, 0, 1) * 255) / 255
    # The same TensorFlow op: equal to float rounding, so on the same 8-bit levels.
    np.testing.assert_allclose(lr, expected, atol=1e-6)
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)
    # Kept float (a stretched FITS frame): the resize itself, only clipped.
    np.testing.assert_allclose(make_lr(hr, 4, quantize=False), np.clip(reference, 0, 1), atol=1e-6)


def test_working_size_is_the_whole_image_resized(real_images):
    """The colouriser's eval input: the whole image, antialiased bilinear to the square working size."""
    img = read_image(real_images[0])
    small = to_size(img, 32)
    ref = np.clip(tf.image.resize(img[None], (32, 32), "bilinear", antialias=True)[0].numpy(), 0, 1)
    assert small.shape == (32, 32, 3)
    np.testing.assert_allclose(small, ref, atol=1e-6)
    y = np.asarray(rgb_to_yuv(small))[..., 0]
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_split_files_errors(tmp_path, real_images):
    with pytest.raises(ValueError, match="data.prepare"):
        split_files(str(tmp_path), "train")
    (tmp_path / "dev").mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        split_files(str(tmp_path), "dev")
    with pytest.raises(ValueError, match="unknown split"):
        split_files(str(tmp_path), "val")
