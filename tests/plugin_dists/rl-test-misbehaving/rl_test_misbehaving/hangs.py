"""A module whose import never returns, as one waiting on a lock or a network share would."""

import time

while True:
    time.sleep(1)


class HangBlock:  # never reached
    pass
