"""The split folders that data.prepare writes and the trainers read."""
import pytest

from data.splits import split_files


def test_split_files_errors(tmp_path, real_images):
    with pytest.raises(ValueError, match="data.prepare"):
        split_files(str(tmp_path), "train")
    (tmp_path / "dev").mkdir()
    with pytest.raises(ValueError, match="no usable images"):
        split_files(str(tmp_path), "dev")
    with pytest.raises(ValueError, match="unknown split"):
        split_files(str(tmp_path), "val")
