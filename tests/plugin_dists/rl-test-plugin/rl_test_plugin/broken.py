"""A plugin module that fails on import, as one with a missing dependency would."""

raise RuntimeError("rl_test_plugin.broken fails to import on purpose")


class BrokenBlock:  # never reached
    pass
