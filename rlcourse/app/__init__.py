"""The application layer: the ``rlcourse`` CLI and the bench suites (the only layer that imports everything)."""
