"""Colourise grey telescope frames and super-resolve them 4x: the command (`python -m pipeline.run`)
and its Python API.

    from pipeline import Pipeline
    pipe = Pipeline.load()            # bundled models; TensorFlow is imported here, not by `import pipeline`
    rgb = pipe.process(grey_array)    # float32 [896, 896, 3] in [0, 1]

See `pipeline.api` for shapes, dtypes, options and errors.
"""
__all__ = ["Pipeline", "PipelineInputError", "ModelLoadError", "as_image", "default_model_dir"]


def __getattr__(name: str):
    # Lazy (PEP 562) so that `import pipeline` stays cheap: no TensorFlow until a model is loaded.
    if name in ("Pipeline", "PipelineInputError", "as_image"):
        from pipeline import api

        return getattr(api, name)
    if name == "default_model_dir":
        from pipeline.bundled import default_model_dir

        return default_model_dir
    if name == "ModelLoadError":
        from pipeline.models import ModelLoadError  # imports TensorFlow

        return ModelLoadError
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
