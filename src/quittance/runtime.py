"""Process settings for the long-running commands (`serve`, `worker`)."""

import gc

# Collect the youngest generation after this many new container objects instead of Python's
# 700. Nearly every object a request makes is freed by reference counting before it could be
# collected; at 700 the collector ran about 85 times a second under load for nothing.
YOUNGEST_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Once the process is set up: move what it holds (modules, the app, the mappers, some
    180,000 objects) out of the collector's sight, and collect young objects less often.

    Under the lifecycle load the collector took about 3% of the server's time (`gc.callbacks`
    timings: 150 to 190 ms per 5 s), most of it in full collections walking the objects made
    at start-up, which never become garbage. Frozen and with the higher threshold it took
    under 5 ms per 5 s. Reference cycles are still collected, only in larger steps.
    """
    gc.collect()  # what start-up left as garbage goes now, not into the frozen set
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNGEST_THRESHOLD, middle, old)
