"""Time arguments of Context/At: RFC1123 dates and Go durations."""

import calendar
import re

from ..common.timeutil import parse_duration_ms

_MONTHS = {m: i for i, m in enumerate(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_RFC1123 = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
                      r" (\d{4}) (\d{2}):(\d{2}):(\d{2}) ([A-Za-z]{1,5}|[+-]\d{4})")
# Go resolves a few abbreviations; an unknown one is taken as UTC (time.Parse fabricates a zone)
_ZONES = {"UTC": 0, "GMT": 0, "Z": 0, "EST": -5 * 3600, "EDT": -4 * 3600, "CST": -6 * 3600,
          "CDT": -5 * 3600, "MST": -7 * 3600, "MDT": -6 * 3600, "PST": -8 * 3600, "PDT": -7 * 3600,
          "CET": 3600, "CEST": 7200}


def parse_rfc1123_ms(text):
    """`Mon, 02 Jan 2006 15:04:05 MST` to ms since the epoch, or None."""
    m = _RFC1123.fullmatch(text)
    if not m:
        return None
    day, mon, year, hh, mm, ss, zone = m.groups()[1:]
    day, year, hh, mm, ss = int(day), int(year), int(hh), int(mm), int(ss)
    month = _MONTHS[mon]
    if not (1 <= day <= calendar.monthrange(year, month)[1]) or year < 1 or hh > 23 or mm > 59 or ss > 59:
        return None
    if zone[0] in "+-":
        off = (int(zone[1:3]) * 3600 + int(zone[3:5]) * 60) * (1 if zone[0] == "+" else -1)
    else:
        off = _ZONES.get(zone.upper(), 0)
    secs = calendar.timegm((year, month, day, hh, mm, ss, 0, 0, 0)) - off
    return secs * 1000


def parse_duration(text):
    """A Go duration in ms, or None."""
    try:
        return parse_duration_ms(text)
    except (ValueError, OverflowError):
        return None


def parse_time_context(text, now_ms):
    """Upstream parseTimeContext: an RFC1123 date, else now + Go duration; None if neither."""
    t = parse_rfc1123_ms(text)
    if t is not None:
        return t
    d = parse_duration(text)
    if d is not None:
        return now_ms + d
    return None
