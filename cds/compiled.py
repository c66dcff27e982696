"""Which of the package's modules run compiled (Cython, see ``hatch_build.py``) and which run from their source.

Python imports an extension module before the source beside it, so a module edited after it was compiled would run
its old code. ``cds/_compiled.json`` records the hash of each source that was compiled; a module whose source no
longer matches, or that is not recorded, runs from its source, and ``make`` compiles it again. ``CDS_COMPILED=0``
runs every module from source (for a profiler that should see Python functions). Imported first by the package,
before any module it guards; it imports nothing of the package itself.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "_compiled.json"
OFF_VALUES = ("0", "false", "no", "off")


class _Sources(importlib.abc.MetaPathFinder):
    """Finds the listed modules' source files, ahead of the import system's own finder (which prefers the .so)."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(self, fullname, path=None, target=None):
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, source, submodule_search_locations=[str(source.parent)] if source.name == "__init__.py" else None
        )


def _extension_modules() -> dict[str, Path]:
    """Every compiled module in the package: its import name -> its source file."""
    found: dict[str, Path] = {}
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for folder, _dirs, files in os.walk(PACKAGE):
        for file in files:
            suffix = next((s for s in suffixes if file.endswith(s)), None)
            if suffix is None:
                continue
            source = Path(folder, file[: -len(suffix)] + ".py")
            parts = source.relative_to(PACKAGE.parent).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return found


def _hash(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def _manifest_key(name: str, source: Path) -> str:
    return f"{name}.__init__" if source.name == "__init__.py" else name


def _sort(environ: os._Environ | dict[str, str]) -> tuple[list[str], dict[str, Path], str | None]:
    """(compiled modules in use, modules run from source -> their file, why some run from source)."""
    modules = _extension_modules()
    if not modules:
        return [], {}, None
    if environ.get("CDS_COMPILED", "1").strip().lower() in OFF_VALUES:
        return [], {name: source for name, source in modules.items() if source.exists()}, "CDS_COMPILED=0"
    try:
        manifest = json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        manifest = {}
    compiled, sources = [], {}
    for name, source in sorted(modules.items()):
        # shipped without its source there is nothing else to run
        if not source.exists() or manifest.get(_manifest_key(name, source)) == _hash(source):
            compiled.append(name)
        else:
            sources[name] = source
    return compiled, sources, "changed since compiled (make compiles them again)" if sources else None


COMPILED, FROM_SOURCE, WHY_FROM_SOURCE = _sort(os.environ)
if FROM_SOURCE:
    sys.meta_path.insert(0, _Sources(FROM_SOURCE))


def summary() -> str:
    """One line for the start-up log."""
    if not COMPILED and not FROM_SOURCE:
        return "compiled modules: none (pure Python; `make` compiles the hot path with Cython)"
    text = f"compiled modules: {len(COMPILED)} in use"
    if FROM_SOURCE:
        text += f"; {len(FROM_SOURCE)} run from source, {WHY_FROM_SOURCE}: {', '.join(sorted(FROM_SOURCE))}"
    return text
