"""``python -m rlcourse``: the same command line as the ``rlcourse`` console script."""

import os
import sys

try:
    from rlcourse.app.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI itself is being imported: the same line main() prints
    sys.stderr.write("rlcourse: error: interrupted\n")
    raise SystemExit(130) from None

if __name__ == "__main__":
    code = main()
    if code == 130:  # interrupted, perhaps inside torch's import: leave without finalising what is half imported
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # (finalising it could still end the process by the signal, with no exit code 130)
    raise SystemExit(code)
