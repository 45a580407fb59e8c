"""Families from the user's code: ``--family-module MODULE_OR_FILE.py`` and the entry points of the
group ``textbench.families``.

A user's module defines one or more ``textbench.core.families.Family`` records and either registers
them (``textbench.spaces.register``) or exposes ``FAMILY`` / ``FAMILIES``; an installed package names
such a module (or a ``Family``, or a list of them) in its entry points. Loading registers each family
in ``textbench.spaces.FAMILIES``, the one registry every command reads, and checks it at once (its
space on a recording stand-in for a trial, its starting configuration built small and run forward,
``core.family_check``) so that a broken module is refused in one line before any data is read.

Where a family came from is kept for the rest of the run: its module is recorded on the family's
study (``family_module``, so ``report``, ``predict``, ``export`` and ``rerun`` of a finished benchmark
load it again without the flag) and in ``$TEXTBENCH_FAMILY_MODULES``, which the spawned ``--workers``
helpers inherit and load before they start.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

from textbench import spaces
from textbench.core.errors import UsageError
from textbench.core.families import TRAINING_PARAMS, Family
from textbench.core.family_check import one_line

ENV = "TEXTBENCH_FAMILY_MODULES"  # os.pathsep-separated modules the helpers load
ENTRY_POINT_GROUP = "textbench.families"
SOURCES: dict[str, str] = {}  # family name -> the module it came from (absolute file path or dotted name)
LOADED: dict[str, list[str]] = {}  # module spec -> names of the families it gave
ENTRY_POINTS_LOADED = False


def is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or os.sep in spec or "/" in spec


def canonical(spec: str) -> str:
    """A file as its absolute path (what the study records), a module name as given."""
    return str(Path(spec).expanduser().resolve()) if is_file_spec(spec) else spec


def import_spec(spec: str) -> ModuleType:
    """Import a module by dotted name (the current folder is searched too) or a ``.py`` file."""
    if is_file_spec(spec):
        path = Path(spec)
        if not path.is_file():
            raise UsageError(f"--family-module {spec}: no such file")
        name = path.stem
        existing = sys.modules.get(name)
        if existing is not None and getattr(existing, "__file__", None) != str(path):
            name = f"textbench_family_{name}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module  # inspect.getsource (the export) and pickling find it by name
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))  # its own sibling modules import
        try:
            loader_spec.loader.exec_module(module)
        except BaseException as exc:
            del sys.modules[name]
            raise UsageError(f"--family-module {spec}: importing it failed: {one_line(exc)}") from None
        return module
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(spec)
    except BaseException as exc:
        raise UsageError(f"--family-module {spec}: importing it failed: {one_line(exc)}") from None


def exposed(obj, where: str) -> list[Family]:
    """The families ``obj`` (a module's ``FAMILY``/``FAMILIES``, or an entry point's value) gives."""
    if isinstance(obj, Family):
        return [obj]
    if isinstance(obj, Mapping):
        obj = list(obj.values())
    if isinstance(obj, (list, tuple)) and all(isinstance(f, Family) for f in obj):
        return list(obj)
    raise UsageError(
        f"{where}: expected a textbench.core.families.Family or a list of them, got {type(obj).__name__}"
    )


def check_space(family: Family, where: str) -> None:
    """The space samples only parameters the config has (or ``learning_rate``), and returns them."""
    from textbench.search.fixed import parameters

    prefix = f"family {family.name!r} from {where}"
    if not callable(family.suggest):
        raise UsageError(f"{prefix}: suggest must be a function suggest(trial) -> dict")
    try:
        params = parameters(family.name)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"{prefix}: suggest(trial) failed on a recording trial: {one_line(exc)}") from None
    try:
        known = set(family.config_class().to_dict()) | set(TRAINING_PARAMS)
    except Exception as exc:  # noqa: BLE001
        raise UsageError(f"{prefix}: config cannot be built with its defaults: {one_line(exc)}") from None
    unknown = sorted(set(params) - known)
    if unknown:
        raise UsageError(
            f"{prefix}: suggest samples {unknown[0]!r}, which is neither a field of "
            f"{family.config_class.__name__} nor one of {', '.join(TRAINING_PARAMS)}"
        )
    notes_unknown = sorted(set(family.notes_config) - known)
    if notes_unknown:
        raise UsageError(f"{prefix}: notes_config sets {notes_unknown[0]!r}, which the config does not have")


def check_family(family: Family, where: str) -> None:
    if not family.name or any(c in family.name for c in ",/\\ "):
        raise UsageError(f"{where}: family name {family.name!r} must be a plain word (no commas, slashes)")
    check_space(family, where)
    from textbench.core.family_check import check_model

    check_model(family, where)


def add_families(families: Iterable[Family], where: str, source: str | None) -> list[str]:
    """Register and check ``families``; a family that fails its check is unregistered again."""
    names = []
    for family in families:
        before = spaces.FAMILIES.get(family.name)
        spaces.register(family)
        try:
            check_family(family, where)
        except UsageError:
            if before is None:
                spaces.FAMILIES.pop(family.name, None)
            else:
                spaces.FAMILIES[family.name] = before
            raise
        if source is not None:
            SOURCES[family.name] = source
        names.append(family.name)
    return names


def load_module(spec: str) -> list[str]:
    """Load one ``--family-module``: the names of the families it gave (loaded once per process)."""
    key = canonical(spec)
    if key in LOADED:
        return LOADED[key]
    before = dict(spaces.FAMILIES)
    module = import_spec(spec)
    registered = [f for name, f in spaces.FAMILIES.items() if before.get(name) is not f]
    for name in [f.name for f in registered]:  # checked below, with the exposed ones
        spaces.FAMILIES.pop(name)
        if name in before:
            spaces.FAMILIES[name] = before[name]
    found = {f.name: f for f in registered}
    for attr in ("FAMILY", "FAMILIES"):
        if hasattr(module, attr):
            found.update({f.name: f for f in exposed(getattr(module, attr), f"{spec}: {attr}")})
    if not found:
        raise UsageError(
            f"--family-module {spec}: defines no family: call textbench.spaces.register(Family(...)) "
            "in it, or set FAMILY = Family(...) (or FAMILIES = [...])"
        )
    names = add_families(found.values(), spec, key)
    LOADED[key] = names
    remember(key)
    return names


def remember(key: str) -> None:
    """Add ``key`` to ``$TEXTBENCH_FAMILY_MODULES`` (inherited by the spawned helpers)."""
    known = [s for s in os.environ.get(ENV, "").split(os.pathsep) if s]
    if key not in known:
        os.environ[ENV] = os.pathsep.join([*known, key])


def load_entry_points() -> list[str]:
    """Families of the installed packages' ``textbench.families`` entry points (once per process)."""
    global ENTRY_POINTS_LOADED
    if ENTRY_POINTS_LOADED:
        return []
    ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    names = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value}"
        try:
            value = point.load()
        except BaseException as exc:
            raise UsageError(f"{where} ({ENTRY_POINT_GROUP}): loading it failed: {one_line(exc)}") from None
        if isinstance(value, ModuleType):
            found = [getattr(value, a) for a in ("FAMILY", "FAMILIES") if hasattr(value, a)]
            families = [f for obj in found for f in exposed(obj, where)]
        else:
            families = exposed(value, where)
        names += add_families(families, where, source=None)  # every process finds entry points itself
    return names


def load_families(specs: Iterable[str] = ()) -> list[str]:
    """Everything a command needs before it checks ``--arch``: the entry points, the modules in
    ``$TEXTBENCH_FAMILY_MODULES`` (a helper's parent's) and ``specs`` (``--family-module``)."""
    names = load_entry_points()
    inherited = [s for s in os.environ.get(ENV, "").split(os.pathsep) if s]
    for spec in [*inherited, *specs]:
        names += load_module(spec)
    return names


def load_recorded(modules: Mapping[str, str | None]) -> None:
    """Re-load the modules a finished benchmark's studies recorded, for families not known yet
    (``{family: recorded module or None}``); a module that is gone is an error naming the flag."""
    for family, spec in modules.items():
        if family in spaces.FAMILIES or not spec:
            continue
        if is_file_spec(spec) and not Path(spec).is_file():
            raise UsageError(
                f"family {family!r} came from {spec}, which is gone: pass --family-module with its new path"
            )
        load_module(spec)


def source(family: str) -> str | None:
    """The module ``family`` was loaded from (None for built-ins and entry points)."""
    return SOURCES.get(family)
