"""Times are integer milliseconds since the Unix epoch everywhere on the wire."""

import datetime
import time


def now_ms():
    return time.time_ns() // 1_000_000


def ms_to_rfc3339(ms):
    dt = datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_now():
    return datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DURATION_UNITS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def parse_duration_ms(text):
    """Parse a Go duration string ("5s", "-1m30s", "1h", "250ms") into milliseconds (int).

    Raises ValueError with the offending text when it is not a duration.
    """
    s = text.strip()
    if not s:
        raise ValueError("invalid duration %r" % text)
    sign = 1
    if s[0] in "+-":
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return 0
    total = 0.0
    i = 0
    if not s:
        raise ValueError("invalid duration %r" % text)
    while i < len(s):
        j = i
        while j < len(s) and (s[j].isdigit() or s[j] == "."):
            j += 1
        if j == i:
            raise ValueError("invalid duration %r" % text)
        number = float(s[i:j])
        k = j
        while k < len(s) and not (s[k].isdigit() or s[k] == "."):
            k += 1
        unit = s[j:k]
        if unit not in _DURATION_UNITS:
            raise ValueError("invalid duration %r: unknown unit %r" % (text, unit))
        total += number * _DURATION_UNITS[unit]
        i = k
    return sign * int(round(total))
