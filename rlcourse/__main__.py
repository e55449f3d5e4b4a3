"""``python -m rlcourse``: the same command line as the ``rlcourse`` console script."""

from rlcourse.app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
