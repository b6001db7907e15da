"""The runs' one percentile."""

import math


def percentile(sorted_values, p, *, rank=math.ceil):
    """The value at rank `rank(p / 100 × n)` (1-based) of sorted values, None if there are none.
    math.ceil is the nearest-rank definition of the dispatch and API figures; the chaos run's figures
    have always ranked with round() instead, and pass it to keep their definition."""
    if not sorted_values:
        return None
    return sorted_values[max(0, rank(p / 100 * len(sorted_values)) - 1)]
