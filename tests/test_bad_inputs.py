"""The bad-input corpus: every bad file gets one clear message, good ones an output."""
import hashlib
import os

import pytest





def _hashes(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        p = os.path.join(folder, name)
        if os.path.isfile(p) and not os.path.islink(p) and os.access(p, os.R_OK):
            out[name] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def test_readers_on_corpus(corpus):
    from data.io import ImageReadError, read_image

    folder, expected = corpus
    for name, outcome in expected.items():
        path = os.path.join(folder, name)
        if outcome == "ok":
            img = read_image(path)
            assert img.ndim == 3 and img.shape[-1] in (1, 3) and img.min() >= 0 and img.max() <= 1, name
        elif outcome == "at least 2x2":
            assert read_image(path).shape == (1, 1, 3)  # readable; the pipeline refuses it
        else:
            with pytest.raises(ImageReadError) as e:
                read_image(path)
            assert str(e.value).startswith(path) and outcome in str(e.value), (name, str(e.value))
            assert "\n" not in str(e.value)


def test_pipeline_run_over_corpus(tmp_path, corpus, real_images, tiny_exports):
    import shutil

    from pipeline.runner import RunConfig, run

    folder, expected = corpus
    shutil.copy(real_images[3], folder / "good.png")
    expected["good.png"] = "ok"
    before = _hashes(folder)
    messages = []
    result = run(RunConfig(input=str(folder), output=str(tmp_path / "out"), colorize_model=tiny_exports["colorize"],
                           srgan_model=tiny_exports["srgan"], progress=False), log=messages.append)
    failed = {os.path.basename(p): reason for p, reason in result.failed}
    good = {n for n, o in expected.items() if o == "ok"}
    assert set(failed) == set(expected) - good
    for name, reason in failed.items():
        assert expected[name] in reason, (name, reason)
        assert sum(name in m for m in messages if m.startswith("error:")) == 1
    assert len(result.written) == len(good)
    assert _hashes(folder) == before
