"""Settings written once: a config dataclass field carries its default and its help; flags are made from it.

A config module declares each setting with `setting(default, help, choices)`;
an entry module (`colorize.train`, `srgan.train`) calls `define_flags` to turn
the fields into absl flags and `from_flags` to read them back. So a default and
its help text exist in one place, and the command line cannot drift from the
dataclass that `config.json` and the library use.

Only entry modules call `define_flags`/`from_flags`; library code takes the
dataclass and never reads flags.
"""
from __future__ import annotations

import dataclasses
import sys
from typing import Any, Iterable, Optional, Sequence

from absl import flags

_MISSING = dataclasses.MISSING


def setting(default: Any = _MISSING, help: str = "", choices: Optional[Sequence[str]] = None) -> Any:
    """A dataclass field whose metadata holds its flag's help text (and choices, for an enum flag).

    Args:
        default: the field's (and the flag's) default; omitted for a required setting.
        help: the flag's help text.
        choices: the allowed values of a string setting (the flag becomes an enum).

    Returns:
        A `dataclasses.field`.
    """
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None}
    return dataclasses.field(default=default, metadata=metadata)


def _kind(field: dataclasses.Field) -> str:
    """The flag kind of a field: from its default's type, or (default None or none) from its annotation."""
    default = field.default
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "integer"
    if isinstance(default, float):
        return "float"
    if isinstance(default, (tuple, list)):
        return "list"
    if isinstance(default, str) or default is _MISSING:
        return "string"
    # default None: Optional[bool] / Optional[float] / ... (annotations are strings here).
    annotation = str(field.type)
    for name, kind in (("bool", "boolean"), ("int", "integer"), ("float", "float"), ("str", "string")):
        if name in annotation:
            return kind
    raise TypeError(f"{field.name}: cannot make a flag of a {annotation} with default {default!r}")


def define_flags(config_cls: type, skip: Iterable[str] = (),
                 flag_values: flags.FlagValues = flags.FLAGS) -> list[str]:
    """Defines one absl flag per field of `config_cls`, with the field's default and help.

    A required field (no default) becomes a flag with default None (the entry
    module marks or checks it). A string field with `choices` becomes an enum
    flag; a tuple field a list flag (comma-separated).

    Args:
        config_cls: a dataclass whose fields were made with `setting`.
        skip: fields that are not flags (e.g. found in the data).
        flag_values: where to define them (tests pass their own).

    Returns:
        The names of the flags defined.
    """
    skip = set(skip)
    # Registered as the calling entry module's own flags (absl would name this module), so that
    # `--helpshort` and `FLAGS.get_flags_for_module` list them there; absl names `__main__` by sys.argv[0].
    caller = sys._getframe(1).f_globals.get("__name__", "")
    module_name = sys.argv[0] if caller == "__main__" else caller
    names = []
    for field in dataclasses.fields(config_cls):
        if field.name in skip:
            continue
        help_text = field.metadata.get("help")
        if not help_text:
            raise ValueError(f"{config_cls.__name__}.{field.name} has no help text: declare it with setting()")
        default = None if field.default is _MISSING else field.default
        choices = field.metadata.get("choices")
        kind = _kind(field)
        if choices is not None:
            flags.DEFINE_enum(field.name, default, list(choices), help_text, flag_values=flag_values,
                              module_name=module_name)
        elif kind == "list":
            flags.DEFINE_list(field.name, [str(v) for v in default], help_text, flag_values=flag_values,
                              module_name=module_name)
        else:
            getattr(flags, f"DEFINE_{kind}")(field.name, default, help_text, flag_values=flag_values,
                                             module_name=module_name)
        names.append(field.name)
    return names


def from_flags(config_cls: type, skip: Iterable[str] = (), flag_values: flags.FlagValues = flags.FLAGS,
               **overrides: Any) -> Any:
    """The `config_cls` of the parsed flags that `define_flags` made (list flags become tuples).

    Args:
        config_cls: the dataclass given to `define_flags`.
        skip: the fields not taken from flags (their dataclass defaults apply, or `overrides`).
        flag_values: the parsed flags.
        **overrides: values given in place of flags.
    """
    skip = set(skip)
    values = {}
    for field in dataclasses.fields(config_cls):
        if field.name in skip:
            continue
        value = flag_values[field.name].value
        values[field.name] = tuple(value) if isinstance(value, list) else value
    return config_cls(**(values | overrides))


__all__ = ["setting", "define_flags", "from_flags"]
