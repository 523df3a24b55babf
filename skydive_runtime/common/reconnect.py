"""The reconnect loop of the long-lived client links (agent -> analyzer, analyzer -> peer).

    await reconnect_loop(session, keep_going, on_error, on_end=..., before=..., longest=5.0)

runs `await before()` (when given) then `await session()` while `keep_going()`; an exception
of the session goes to `on_error(exc)` (cancellation goes through), `on_end()` runs after each
session however it ended; between two sessions it waits with exponential backoff (`first`
doubling to `longest` seconds, ±20 % jitter so that many clients do not come back at once),
back to `first` after a session that ended without an error.
"""

import asyncio
import random


async def reconnect_loop(session, keep_going, on_error, on_end=None, before=None, first=0.2, longest=5.0):
    delay = first
    while keep_going():
        if before is not None:
            await before()
            if not keep_going():
                break
        try:
            await session()
            delay = first
        except asyncio.CancelledError:
            raise
        except Exception as exc:       # the link's own error: reported, then retried
            on_error(exc)
        finally:
            if on_end is not None:
                on_end()
        if not keep_going():
            break
        await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
        delay = min(delay * 2, longest)
