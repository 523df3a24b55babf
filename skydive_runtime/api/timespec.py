"""Times given to the audit and diff endpoints (`--at`, `--from`, `--to`): what `G.At()` takes
(integer seconds or ms, an RFC1123 date, a Go duration relative to now such as `-5m`, `now`)
plus RFC3339 / ISO 8601 dates (`2026-12-02T01:30:00Z`), the form CI systems print."""

import datetime

from ..gremlin.timeparse import parse_time_context


class TimeSpecError(ValueError):
    pass


def parse_time_ms(value, now_ms, what="time"):
    """ms since the epoch; TimeSpecError naming `what` and the accepted forms."""
    if isinstance(value, bool):
        raise TimeSpecError("%s: expected a time, got a boolean" % what)
    if isinstance(value, (int, float)):
        v = int(value)
        if v < 0:
            raise TimeSpecError("%s: %r is negative" % (what, value))
        return v * 1000 if v <= 2 ** 31 else v        # as At(): small integers are seconds
    if not isinstance(value, str) or not value.strip():
        raise TimeSpecError("%s: expected a time (integer, RFC3339, RFC1123, a duration like -5m, or now)" % what)
    text = value.strip()
    if text.lower() == "now":
        return now_ms
    if text.isdigit():
        return parse_time_ms(int(text), now_ms, what)
    t = parse_time_context(text, now_ms)       # what G.At() takes: RFC1123, now + duration
    if t is not None:
        return t
    try:
        dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise TimeSpecError("%s: %r is not a time (integer seconds or ms, RFC3339 like 2026-12-02T01:30:00Z, "
                            "RFC1123, a Go duration relative to now like -5m, or now)" % (what, value)) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp() * 1000)
