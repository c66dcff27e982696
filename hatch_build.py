"""Compiles the hot modules (the rules core, the typed record view, cards) with Cython.

The same Python source, translated to C: every answer is byte-identical to the source's (a test replays every
fixture both ways), and a worker does about a fifth fewer instructions a hook call. Two ways in:

- ``pip install .`` (the wheel, the production image): hatchling runs :class:`CustomBuildHook`, which adds the
  compiled modules beside their source. With no C compiler the wheel is pure Python and says so.
- ``make`` (``python hatch_build.py``): builds them in place for the editable install, only those whose source
  changed; ``cds/_compiled.json`` records the hash of each source built, and ``cds/compiled.py`` runs a module from
  source whenever its source no longer matches, so an edit is never hidden by an old build.

The modules are listed once, in ``pyproject.toml`` (``[tool.hatch.build.targets.wheel.hooks.custom] modules``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MANIFEST = "cds/_compiled.json"
# Annotations are documentation here, never C types: the compiled module keeps Python's semantics exactly.
DIRECTIVES = {"language_level": 3, "annotation_typing": False, "binding": True}


def configured_modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]["modules"]


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compile_modules(paths: list[str], out_dir: Path) -> dict[str, Path]:
    """Compile ``paths`` (relative to the project) into ``out_dir``; the module name -> its extension file."""
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    jobs = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as work:
        cwd = Path.cwd()
        os.chdir(ROOT)  # extension names and sources are relative to the project
        try:
            # generated C: its warnings are Cython's to fix, not ours; the build prints one line, not gcc's
            extensions = [Extension(module_name(p), [p], extra_compile_args=["-w"]) for p in paths]
            modules = cythonize(extensions, compiler_directives=DIRECTIVES, build_dir=work, nthreads=jobs, quiet=True)
            command = build_ext(Distribution({"ext_modules": modules, "verbose": 0}))
            command.build_lib, command.build_temp, command.parallel = str(out_dir), work, jobs
            command.ensure_finalized()
            command.run()
        finally:
            os.chdir(cwd)
    return {ext.name: out_dir / command.get_ext_filename(ext.name) for ext in modules}


def build_in_place() -> int:
    """`make`'s step: compile the listed modules whose source changed since the last build, beside the source."""
    manifest_path = ROOT / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    wanted = {module_name(p): p for p in configured_modules()}
    stale = [p for name, p in wanted.items() if manifest.get(name) != source_hash(ROOT / p) or not _built(name)]
    if stale:
        print(f"compiling {len(stale)} of {len(wanted)} modules with Cython", flush=True)
        with tempfile.TemporaryDirectory() as out:
            try:
                built = compile_modules(stale, Path(out))
            except Exception as exc:  # noqa: BLE001  (no C compiler: the same source runs as pure Python)
                print(f"WARNING: not compiled ({exc}); these modules run as pure Python", file=sys.stderr)
                built = {}
            for name, path in built.items():
                target = ROOT / path.relative_to(out)
                target.unlink(missing_ok=True)  # a running worker keeps the mapped old file
                shutil.copy2(path, target)
                manifest[name] = source_hash(ROOT / wanted[name])
    manifest = {name: digest for name, digest in manifest.items() if name in wanted}
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return 0


def _built(name: str) -> bool:
    from importlib.machinery import EXTENSION_SUFFIXES

    base = ROOT / name.replace(".", "/")
    return any(base.with_name(base.name + suffix).exists() for suffix in EXTENSION_SUFFIXES)


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run by `make`, outside hatchling's build environment
    BuildHookInterface = None

if BuildHookInterface is not None:

    class CustomBuildHook(BuildHookInterface):
        """Adds the compiled modules and their manifest to a wheel (not to an editable install: `make` does that)."""

        def initialize(self, version: str, build_data: dict) -> None:
            if self.target_name != "wheel" or version == "editable":
                return
            paths = self.config["modules"]
            out = Path(tempfile.mkdtemp(prefix="cds-compiled-"))
            try:
                built = compile_modules(paths, out)
            except Exception as exc:  # noqa: BLE001  (no compiler: a pure-Python wheel still serves)
                print(f"WARNING: compiling with Cython failed ({exc}); this wheel is pure Python", file=sys.stderr)
                return
            for path in built.values():
                build_data["force_include"][str(path)] = str(path.relative_to(out))
            manifest = {module_name(p): source_hash(ROOT / p) for p in paths}
            (out / "_compiled.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            build_data["force_include"][str(out / "_compiled.json")] = MANIFEST
            build_data["pure_python"] = False
            build_data["infer_tag"] = True


if __name__ == "__main__":
    sys.exit(build_in_place())
