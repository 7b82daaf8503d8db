"""Every default once: flags made from config fields, and each entry module's flag defaults equal to its config's."""
import dataclasses
import importlib
import json
import os
import subprocess
import sys
from typing import Optional

import pytest
from absl import flags

from common.settings import define_flags, from_flags, setting

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class _Toy:
    path: str = setting(help="A required path.")
    steps: int = setting(3, help="Steps.")
    rate: float = setting(0.5, help="A rate.")
    keep: bool = setting(True, help="Keep it.")
    mode: str = setting("a", help="A mode.", choices=("a", "b"))
    names: tuple = setting(("x",), help="Some names.")
    bar: Optional[bool] = setting(None, help="A bar (None: decided later).")
    found: tuple = ()  # not a flag


def test_flags_from_fields_carry_default_help_and_choices():
    fv = flags.FlagValues()
    assert define_flags(_Toy, skip=("found",), flag_values=fv) == ["path", "steps", "rate", "keep", "mode",
                                                                  "names", "bar"]
    assert fv["steps"].help == "Steps." and fv["mode"].help.endswith("A mode.")
    fv(["prog"])
    assert from_flags(_Toy, skip=("found",), flag_values=fv) == _Toy(path=None)
    fv(["prog", "--path=p", "--steps=7", "--rate=2", "--nokeep", "--mode=b", "--names=u,v", "--bar"])
    assert from_flags(_Toy, skip=("found",), flag_values=fv, found=(1,)) == _Toy(
        path="p", steps=7, rate=2.0, keep=False, mode="b", names=("u", "v"), bar=True, found=(1,))
    with pytest.raises(flags.IllegalFlagValueError):
        fv["mode"].parse("c")


def test_a_field_without_help_is_refused():
    @dataclasses.dataclass
    class Bare:
        steps: int = 3

    with pytest.raises(ValueError, match="Bare.steps has no help text"):
        define_flags(Bare, flag_values=flags.FlagValues())


# entry module -> [(config class, which of its fields are flags: None = every field by its own name,
#                   else {flag: field})]. Fields without a default are required and have no default to agree on.
_FULL = "pipeline.full.FullOptions"
_ENTRIES = {
    "colorize.train": [("colorize.config.ColorizeConfig", None)],
    "data.fetch": [("data.fetching.FetchConfig", None)],
    "srgan.train": [("srgan.config.SRGANConfig", None)],
    "pipeline.run": [("pipeline.runner.RunConfig", None),
                     (_FULL, {n: n for n in ("size", "tile", "tile_overlap", "output_format", "linear_output",
                                             "report", "residual_map", "stretch", "interval", "percentile")}
                      | {"batch_size": "tile_batch"})],
    "pipeline.evaluate": [("pipeline.evaluation.EvalConfig", {"srgan_model": "srgan_models"}),
                          ("pipeline.evaluation.EvalConfig", None),
                          ("pipeline.crossdomain.CrossDomainConfig", {"crossdomain_figure": "figure"}),
                          ("pipeline.crossdomain.CrossDomainConfig", None)],
    "pipeline.compose": [("pipeline.compose_job.ComposeConfig", {"output_format": "formats"}),
                         ("pipeline.compose_job.ComposeConfig", None),
                         ("pipeline.composite.CompositeOptions", None),
                         (_FULL, {"size": "size", "tile": "tile", "tile_overlap": "tile_overlap",
                                  "batch_size": "tile_batch"})],
}

_DUMP = ("import importlib, json, sys\nfrom absl import flags\nimportlib.import_module(sys.argv[1])\n"
         "print(json.dumps({n: flags.FLAGS[n].default for n in flags.FLAGS}))")


def _plain(value):
    # Flags hold lists where fields hold tuples.
    return list(value) if isinstance(value, (list, tuple)) else value


def _config_class(dotted: str):
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("entry", sorted(_ENTRIES))
def test_flag_defaults_equal_config_defaults(entry):
    # Each entry module in its own process: entry modules define flags of the same names.
    done = subprocess.run([sys.executable, "-c", _DUMP, entry], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-800:]
    defaults = json.loads(done.stdout.strip().splitlines()[-1])
    compared, differ = 0, []
    for dotted, mapping in _ENTRIES[entry]:
        fields = {f.name: f for f in dataclasses.fields(_config_class(dotted))}
        pairs = mapping.items() if mapping is not None else [(n, n) for n in fields if n in defaults]
        for flag, name in pairs:
            assert flag in defaults, f"{entry} has no --{flag} (for {dotted}.{name})"
            field = fields[name]
            if field.default is dataclasses.MISSING:
                continue
            compared += 1
            if _plain(defaults[flag]) != _plain(field.default):
                differ.append(f"--{flag}={defaults[flag]!r} but {dotted}.{name}={field.default!r}")
    assert not differ, f"{entry}: " + "; ".join(differ)
    assert compared >= 5, f"{entry}: only {compared} flags matched a config field"
