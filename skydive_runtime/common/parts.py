"""What a service is made of: topology probes chosen by name, and the ordered list of its parts.

A topology probe is an object with `start()` (called on the event loop), `stop()` and `status()`
(a JSON-able dict for GET /api/status); `stop_blocks = True` when stop() joins a thread (it then
runs in an executor). A service knows its probes through a `ProbeRegistry`: probe name -> module
whose `create(service)` builds the probe, one `register` line per probe:

    PROBES = ProbeRegistry("agent.topology.probes", __package__, always_on=("netlink", "netns"))
    PROBES.register("netlink", ".netlink_probe")

`Parts` holds the probes and managers of a service in start order: `start()` starts the parts
added since the last call, `stop()` stops the started ones in reverse (and empties the list), `status()` asks each part
for its section of the status document.
"""

import asyncio
import importlib
import inspect
import logging

from ..config import ConfigError

log = logging.getLogger(__name__)


class Probe:
    """Base of topology probes (the interface `Parts` and `ProbeRegistry` rely on)."""

    name = ""
    stop_blocks = False

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def status(self):
        return {}


class ProbeRegistry:
    def __init__(self, config_key, package, always_on=()):
        self.config_key = config_key      # the configuration list naming the probes
        self.package = package            # modules are relative to this package
        self.always_on = tuple(always_on)
        self._modules = {}                # probe name -> module holding create(service)

    def register(self, name, module):
        self._modules[name] = module

    def names(self):
        return sorted(self._modules)

    def selected(self, configured):
        """The always-on probes then the configured ones, once each; an unknown name is a ConfigError."""
        names = list(self.always_on)
        for name in configured:
            if not isinstance(name, str) or name not in self._modules:
                raise ConfigError("%s: unknown topology probe %r (available: %s)"
                                  % (self.config_key, name, ", ".join(self.names()) or "none"))
            if name not in names:
                names.append(name)
        return names

    def create(self, name, service):
        probe = importlib.import_module(self._modules[name], self.package).create(service)
        probe.name = name
        return probe


class Parts:
    def __init__(self):
        self._parts = []      # [part, section, name]: status goes to status[section][name] or status[section]
        self._started = []

    def add(self, part, section=None, name=None):
        self._parts.append((part, section, name))
        return part

    async def start(self):
        for part, _section, _name in self._parts:
            if any(p is part for p in self._started):
                continue
            result = part.start()
            if inspect.isawaitable(result):
                await result
            self._started.append(part)

    async def stop(self):
        loop = asyncio.get_running_loop()
        while self._started:
            part = self._started.pop()
            try:
                if getattr(part, "stop_blocks", False):
                    await loop.run_in_executor(None, part.stop)
                else:
                    result = part.stop()
                    if inspect.isawaitable(result):
                        await result
            except Exception:      # keep stopping the others
                log.exception("error while stopping %s", type(part).__name__)
        self._parts = []

    def status(self):
        out = {}
        for part, section, name in self._parts:
            if section is None:
                continue
            if name is None:
                out[section] = part.status()
            else:
                out.setdefault(section, {})[name] = part.status()
        return out
