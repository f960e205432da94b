"""Prometheus durations (`1h`, `45s`, `1h12m`, `750ms`) as seconds, and back.

The mixin reads every window, period and `for:` from its config as a duration string, may scale
them (a drill profile divides them all), and writes them back in Prometheus's own spelling, which
is also how the SLI recording rules name their windows (`slo:sli_error:ratio_rate5m`):

    >>> seconds("1h12m")
    4320.0
    >>> duration(4320.0), duration(0.75), duration(0)
    ('1h12m', '750ms', '0s')
"""

from __future__ import annotations

import re

UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))
_PART = re.compile(r"(\d+)(ms|d|h|m|s)")


def seconds(text: str) -> float:
    """`text` (a Prometheus duration without weeks or years) in seconds; ValueError if not one."""
    parts = _PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"{text!r} is not a Prometheus duration such as 5m, 1h30m or 750ms")
    factor = dict(UNITS)
    return sum(int(number) * factor[unit] for number, unit in parts)


def duration(value: float) -> str:
    """`value` seconds as the shortest Prometheus duration, whole milliseconds."""
    millis = round(value * 1000)
    if millis < 0:
        raise ValueError(f"a duration cannot be negative: {value}")
    if millis == 0:
        return "0s"
    text = ""
    for unit, size in UNITS:
        count, millis = divmod(millis, round(size * 1000))
        if count:
            text += f"{count}{unit}"
    return text


def spoken(text: str) -> str:
    """A duration as an alert's description says it: `1m30s` -> `1 minute 30 seconds`."""
    words = {"d": "day", "h": "hour", "m": "minute", "s": "second", "ms": "millisecond"}
    parts = [
        f"{number} {words[unit]}{'' if number == '1' else 's'}"
        for number, unit in _PART.findall(duration(seconds(text)))
    ]
    return " ".join(parts) if parts else "0 seconds"
