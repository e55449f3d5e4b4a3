"""The layers of DESIGN.md, enforced with import-linter's contracts from ``pyproject.toml``.

The source tree maps ``envs/``, ``agents/`` and ``supervised/`` into the ``rlcourse`` namespace, which
import-linter cannot follow in an editable install, so the tests lay the package out as a wheel
installs it (in a temp folder) and lint that copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"envs": "envs", "agents": "agents", "supervised": "supervised"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def stage(tmp_path: Path) -> Path:
    """The installed layout of the package under ``tmp_path/src``, with the repository's pyproject beside it."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "rlcourse", src / "rlcourse", ignore=ignore)
    for name, folder in LAYERS.items():
        shutil.copytree(ROOT / folder, src / "rlcourse" / name, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return src


def lint(tmp_path: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(tmp_path / "pyproject.toml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def core_modules(src: Path) -> set[str]:
    """Every module of the core: ``rlcourse`` minus the layers above it and the app's entry points (``python -m``,
    and the deprecated ``rlcourse.cli`` alias of ``rlcourse.app.cli``)."""
    modules = set()
    for path in (src / "rlcourse").rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1 and parts[1] in {*LAYERS, "app", "__main__", "cli"}:
            continue
        modules.add(".".join(parts))
    return modules


pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is a dev dependency")


def test_the_repository_keeps_its_layers(tmp_path):
    result = lint(tmp_path, stage(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_the_core_contract_lists_every_core_module(tmp_path):
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (core,) = [contract for contract in contracts if contract["id"] == "core"]
    assert {"rlcourse", *core["source_modules"]} == core_modules(stage(tmp_path)), (
        "add new core modules to the 'core' contract"
    )


UPPER = ("rlcourse.envs", "rlcourse.agents", "rlcourse.supervised", "rlcourse.app")


def imported_by_the_package_module(src: Path) -> set[str]:
    """What ``rlcourse/__init__.py`` itself imports (grimp, import-linter's graph, run on the staged copy)."""
    code = (
        "import grimp, json; g = grimp.build_graph('rlcourse', cache_dir=None); "
        "print(json.dumps(sorted(g.find_modules_directly_imported_by('rlcourse'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(src)},
        cwd=src.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout))


def test_the_package_module_imports_no_upper_layer(tmp_path):
    src = stage(tmp_path)
    imported = imported_by_the_package_module(src)
    assert "rlcourse.registry" in imported and not [m for m in imported if m.startswith(UPPER)]
    init = src / "rlcourse" / "__init__.py"
    init.write_text(init.read_text() + "\nimport rlcourse.envs.classic  # planted\n")
    assert "rlcourse.envs.classic" in imported_by_the_package_module(src)


@pytest.mark.parametrize(
    "importer,imported,contract",
    [
        ("rlcourse/vec_env.py", "rlcourse.agents", "the core imports no env"),
        ("rlcourse/registry.py", "rlcourse.envs.classic", "the core imports no env"),
        ("rlcourse/envs/classic/cartpole.py", "rlcourse.agents.ppo", "app > agents > supervised > envs"),
        ("rlcourse/envs/dialogue/domain.py", "rlcourse.supervised", "app > agents > supervised > envs"),
        ("rlcourse/supervised/__init__.py", "rlcourse.agents", "app > agents > supervised > envs"),
        ("rlcourse/agents/base.py", "rlcourse.app", "app > agents > supervised > envs"),
    ],
)
def test_a_planted_bad_import_breaks_a_contract(tmp_path, importer, imported, contract):
    src = stage(tmp_path)
    target = src / importer
    target.write_text(target.read_text() + f"\nimport {imported}  # planted\n")
    result = lint(tmp_path, src)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
    assert f"{importer[:-3].replace('/', '.').removesuffix('.__init__')} -> {imported}" in result.stdout
