"""rlcourse: batched on-device RL environments and course-style agents.

>>> import rlcourse
>>> env = rlcourse.make_vec("rlcourse/CartPole-v1", num_envs=4096, device="cpu")
>>> from rlcourse.agents import PPO

``import rlcourse`` registers every installed env (for :func:`make_vec` and ``gym.make``) and nothing more:
the public names below and the submodules are imported on first use (PEP 562), so a program that only
needs the registry, or ``rlcourse --help``, does not wait for torch.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the core module that defines it, imported when the name is first used
_LAZY_NAMES = {
    "TensorVecEnv": "rlcourse.vec_env",
    "make_vec": "rlcourse.registry",
    "register_env": "rlcourse.registry",
    "list_envs": "rlcourse.registry",
    "load_env_plugins": "rlcourse.registry",
    "resolve_device": "rlcourse.device",
}

if TYPE_CHECKING:
    from rlcourse.device import resolve_device
    from rlcourse.registry import list_envs, load_env_plugins, make_vec, register_env
    from rlcourse.vec_env import TensorVecEnv


def __getattr__(name: str) -> Any:
    """``rlcourse.make_vec`` and the other public names, and any submodule (``rlcourse.config``), on first use."""
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":  # the submodule exists; something it imports does not
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES})


# --------------------------------------------------------------------------- the source tree
#: Packages that pyproject.toml maps into the namespace from folders beside rlcourse/ (setuptools package-dir).
_MAPPED_FOLDERS = {"rlcourse.envs": "envs", "rlcourse.agents": "agents", "rlcourse.supervised": "supervised"}


class _SourceTreeFinder(importlib.abc.MetaPathFinder):
    """Finds ``rlcourse.envs``/``agents``/``supervised`` in the folders beside a source checkout's ``rlcourse/``.

    Python run in the repository's root puts the source ``rlcourse/`` first on ``sys.path``, ahead of an
    installed (non-editable) copy, and nothing there says that ``rlcourse.envs`` lives in ``envs/``. This
    finder says so. It comes last on ``sys.meta_path``, so every other way of finding these packages (an
    editable install's finder, an installed copy) wins where it works.
    """

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        folder = _MAPPED_FOLDERS.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.root / folder / "__init__.py", submodule_search_locations=[str(self.root / folder)]
        )


def _find_mapped_packages_in_the_source_tree() -> None:
    root = Path(__file__).resolve().parent.parent
    in_source_tree = (root / "pyproject.toml").is_file() and all(
        (root / folder / "__init__.py").is_file() for folder in _MAPPED_FOLDERS.values()
    )
    if in_source_tree and not any(isinstance(finder, _SourceTreeFinder) for finder in sys.meta_path):
        sys.meta_path.append(_SourceTreeFinder(root))


_find_mapped_packages_in_the_source_tree()

from rlcourse.registry import load_env_plugins  # noqa: E402  (after the finder: the plugins import rlcourse.envs)

load_env_plugins()  # registers the envs of every installed env package, rlcourse's own included

__all__ = ["TensorVecEnv", "make_vec", "register_env", "list_envs", "resolve_device", "__version__"]
