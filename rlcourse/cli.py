"""Deprecated: the CLI moved to :mod:`rlcourse.app.cli` (the application layer). This alias keeps
``from rlcourse.cli import main`` and console scripts installed before the move working."""

import warnings

from rlcourse.app.cli import cli, main  # noqa: F401  (re-exported)

warnings.warn("rlcourse.cli moved to rlcourse.app.cli", DeprecationWarning, stacklevel=2)
