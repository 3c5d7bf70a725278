"""A module that ends the interpreter on import, as a plugin with a CLI-style guard gone wrong would."""

import sys

sys.exit(3)


class ExitBlock:  # never reached
    pass
