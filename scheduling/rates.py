"""Send rates as people write them ("30/min", "20/s", "1000/h"): parsed once, held as the interval
between two sends. Plain Python, so that the settings can check theirs at start."""

import re
from dataclasses import dataclass

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    count: float
    period_s: int
    text: str

    @property
    def interval_ms(self) -> float:
        """The time between two sends at this rate, evenly spaced."""
        return self.period_s * 1000 / self.count


def parse_rate(text: str) -> Rate | None:
    """ "20/s" -> Rate(20, 1); "" -> None (unpaced). Anything else raises ValueError, saying what is wanted."""
    if not text or not text.strip():
        return None
    match = _RATE.match(text.lower())
    if not match or match.group(2) not in PERIODS or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate: write a positive number per s, min or h, like 20/s or 30/min")
    return Rate(float(match.group(1)), PERIODS[match.group(2)], text.strip())


def parse_request_limit(text: str) -> Rate | None:
    """An API request limit: a rate of whole requests ("100/min", "5/s"); "0" turns limiting off (None)."""
    if text.strip() == "0":
        return None
    rate = parse_rate(text)
    if rate is None or not rate.count.is_integer():
        raise ValueError(f"{text!r} is not a request limit: write a whole number per s, min or h, like 100/min, or 0")
    return rate
