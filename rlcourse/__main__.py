"""``python -m rlcourse``: the same command line as the ``rlcourse`` console script."""

import sys

try:
    from rlcourse.app.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI itself is being imported: the same line main() prints
    sys.stderr.write("rlcourse: error: interrupted\n")
    raise SystemExit(130) from None

if __name__ == "__main__":
    raise SystemExit(main())
