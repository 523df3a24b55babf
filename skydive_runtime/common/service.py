"""Run services (objects with `async start()` / `async stop()`) until SIGTERM or SIGINT."""

import asyncio
import logging
import signal

log = logging.getLogger(__name__)


def spawn(tasks, coro):
    """Schedule coro on the loop, kept in the set `tasks` until it is done (for cancel at stop)."""
    t = asyncio.ensure_future(coro)
    tasks.add(t)
    t.add_done_callback(tasks.discard)
    return t


async def serve_until_signalled(*services):
    """Start the services in order, wait for SIGTERM/SIGINT (or cancellation), stop them in reverse."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):   # not the main thread
            pass
    started = []
    try:
        for svc in services:
            await svc.start()
            started.append(svc)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        for svc in reversed(started):
            try:
                await svc.stop()
            except Exception:  # keep stopping the others
                log.exception("error while stopping %s", type(svc).__name__)


def raise_fd_limit():
    """Lift the soft RLIMIT_NOFILE to the hard limit (connections, watched namespaces). Returns the
    soft limit now in force (None where unknown)."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, ValueError, OSError):
        return None
