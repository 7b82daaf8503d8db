"""Install the astro colourise + super-resolve tool.

TensorFlow is chosen by extra so that CPU-only machines (and CI) get the small
`tensorflow-cpu` wheel while GPU users get the CUDA-capable one:

    pip install -e ".[cpu]"        # tensorflow-cpu 2.21 + ai-edge-litert (CI, laptops)
    pip install -e ".[gpu]"        # tensorflow[and-cuda] 2.21 (NVIDIA GPUs on Linux)
    pip install -e ".[cpu,test]"   # plus pytest (+ xdist)/hypothesis/jax (CPU) for the test suite
    pip install -e ".[cpu,test,tl]"  # plus TensorLayer 2.2.5 for srgan.import_tl
    pip install -e ".[cpu,dask]"     # plus Dask for `pipeline.run --executor dask` (README: Scaling out)

Exactly one of `cpu` or `gpu` should be picked; without either, TensorFlow must
already be installed.

The exported models in `checkpoints/` (top level of the repository) are shipped
as the package data of `astro_checkpoints`, so a plain (non-editable)
`pip install .` can run its main job from any folder; `pipeline.bundled` finds
them there (or in a checkout, or in `$ASTRO_MODELS_DIR`).
"""
from setuptools import find_packages, setup

TF = "2.21.*"
MODELS_PACKAGE = "astro_checkpoints"  # pipeline.bundled.PACKAGE

setup(
    name="astro-colorize-sr",
    version="0.1.0",
    description=(
        "Colourise greyscale telescope frames and super-resolve them 4x "
        "(Peh & Marshland, Stanford CS230, reproduced and extended)."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["colorize*", "srgan*", "pipeline*", "data*", "common*"]) + [MODELS_PACKAGE],
    # checkpoints/ is a data folder (no __init__.py): installed as astro_checkpoints/.
    package_dir={MODELS_PACKAGE: "checkpoints"},
    package_data={MODELS_PACKAGE: ["*.md", "*/*.json", "*/*.pb", "*/*.keras", "*/*.tflite", "*/variables/*"]},
    install_requires=[
        "numpy>=1.26,<3",
        "pypng>=0.20220715",
        "tifffile>=2023.7",
        "scipy>=1.11,<2",
        "imageio>=2.31,<3",
        "pillow>=10",
        "matplotlib>=3.8,<4",
        "absl-py>=2.1,<3",
        "astropy>=6.0,<9",
        "reproject>=0.13,<1",  # pipeline.compose: frames onto one WCS (astropy-affiliated)
        "tqdm>=4.66,<5",
    ],
    extras_require={
        # ai-edge-litert: the LiteRT interpreter (XNNPACK) for the exports' model.tflite on CPUs
        # (pipeline.run --engine auto|litert); without it TensorFlow's own tf.lite runs them.
        "cpu": [f"tensorflow-cpu=={TF}", "ai-edge-litert>=2.3,<3"],
        "gpu": [f"tensorflow[and-cuda]=={TF}"],
        # jax (CPU): tests/test_colorize_fit.py also trains under KERAS_BACKEND=jax, as a GPU machine
        # without TensorFlow does (skipped where jax is missing).
        "test": ["pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "jax>=0.10,<1"],
        # The cross-domain evaluation's Hubble Deep Field (skimage.data.hubble_deep_field, in the wheel).
        "eval": ["scikit-image>=0.21"],
        # pipeline.run --executor dask / Pipeline.process_files(client=...); bokeh serves the dashboard.
        "dask": ["dask[distributed]>=2024.1", "bokeh>=3.1"],
        # TensorLayer 2.2.5 imports on TF 2.21 only with these two beside it
        # (undeclared by TensorLayer itself).
        # Never tensorlayer[all]: it pins matplotlib<3.1 and keras<2.3. On Python >= 3.12
        # TensorLayer's `distutils` import needs setuptools.
        "tl": [
            "tensorlayer==2.2.5",
            "opencv-python-headless>=4.8,<5",
            "matplotlib>=3.8,<4",
            "setuptools; python_version >= '3.12'",
        ],
    },
)
