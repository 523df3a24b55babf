"""What an alert `Action` may do (docs/security.md): the policy checked when an alert is created
(a refusal is a 400 naming the setting) and again each time the action runs.

- `file:///path`: only executables whose real path (symlinks and `..` resolved) lies under one of
  `analyzer.alert.scripts_dirs` (empty by default: no script may run), not writable by group or
  others; exec'd directly (no shell, no arguments), the payload on stdin only, a minimal
  environment, cwd `/`, and as `analyzer.alert.run_as` when set.
- `http(s)://host/...`: when `analyzer.alert.webhook_allowed` lists host names (`hooks.example`,
  `*.example`) and/or addresses/CIDRs (`10.0.0.0/8`), the target host must match a name, or every
  address it resolves to must be inside a CIDR (checked at connect time, so DNS cannot swap it);
  redirects are not followed. Empty: any target, as upstream.

    policy = ActionPolicy.from_config(config)     # ConfigError on a bad setting
    kind, target = policy.check("file:///etc/skydive/alerts/notify")   # ActionRefused (ValueError)
"""

import errno
import ipaddress
import os
import pwd
import socket
import stat
from urllib.parse import urlsplit

from ..config import ConfigError

SCRIPTS_KEY = "analyzer.alert.scripts_dirs"
RUN_AS_KEY = "analyzer.alert.run_as"
WEBHOOK_KEY = "analyzer.alert.webhook_allowed"
SCRIPT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


class ActionRefused(ValueError):
    """The action is not allowed by the configuration (the message names the setting)."""


def parse_action(action):
    """("", None) | ("webhook", url) | ("script", path); ValueError when it is none of them."""
    a = (action or "").strip()
    if not a:
        return "", None
    low = a.lower()
    if low.startswith("http://") or low.startswith("https://"):
        return "webhook", a
    if low.startswith("file://"):
        path = a[len("file://"):]
        if not path.startswith("/"):
            raise ValueError("file:// action needs an absolute path (file:///path/to/script)")
        return "script", path
    raise ValueError("Action must be empty, an http(s):// URL or file:///path/to/script")


def _ip(text):
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


class ActionPolicy:
    def __init__(self, scripts_dirs=(), run_as="", webhook_allowed=()):
        self.scripts_dirs = []
        for d in scripts_dirs:
            real = os.path.realpath(str(d))
            if not os.path.isdir(real):
                raise ConfigError("%s: %s is not a directory" % (SCRIPTS_KEY, d))
            if os.stat(real).st_mode & stat.S_IWOTH:
                raise ConfigError("%s: %s is writable by everyone: anyone could drop a script there" % (SCRIPTS_KEY, d))
            self.scripts_dirs.append(real)
        self.run_as = None
        if run_as:
            try:
                pw = pwd.getpwnam(str(run_as))
            except KeyError:
                raise ConfigError("%s: no such user %r" % (RUN_AS_KEY, run_as)) from None
            if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
                raise ConfigError("%s: running scripts as %r needs the analyzer to run as root" % (RUN_AS_KEY, run_as))
            self.run_as = pw
        self.names, self.networks = [], []
        for entry in webhook_allowed:
            e = str(entry).strip().lower()
            try:
                self.networks.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                if not e or "/" in e or ":" in e:
                    raise ConfigError("%s: %r is neither a host name nor an address/CIDR" % (WEBHOOK_KEY, entry)) from None
                self.names.append(e)

    @classmethod
    def from_config(cls, config):
        return cls(config.get_list(SCRIPTS_KEY), config.get_string(RUN_AS_KEY), config.get_list(WEBHOOK_KEY))

    @property
    def restricts_webhooks(self):
        return bool(self.names or self.networks)

    def check(self, action):
        """(kind, target) of an allowed action; ActionRefused / ValueError otherwise."""
        kind, target = parse_action(action)
        if kind == "script":
            return kind, self.script_path(target)
        if kind == "webhook":
            self.check_url(target)
        return kind, target

    # ---- scripts ---------------------------------------------------------------------------------
    def script_path(self, path):
        """The real path of an allowed script (re-checked before each run)."""
        if not self.scripts_dirs:
            raise ActionRefused("file:// alert actions are disabled: list the directories holding the allowed "
                                "scripts in %s" % SCRIPTS_KEY)
        real = os.path.realpath(path)
        if not any(real.startswith(d.rstrip("/") + "/") for d in self.scripts_dirs):
            raise ActionRefused("file://%s: %s is not under %s (%s)"
                                % (path, real, SCRIPTS_KEY, ", ".join(self.scripts_dirs)))
        try:
            st = os.stat(real)
        except OSError as exc:
            raise ActionRefused("file://%s: %s" % (path, exc.strerror)) from None
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            raise ActionRefused("file://%s: not an executable file" % path)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ActionRefused("file://%s: writable by group or others, refused" % path)
        return real

    def exec_kwargs(self):
        """Keyword arguments of create_subprocess_exec for a script."""
        kw = {"env": dict(SCRIPT_ENV), "cwd": "/", "close_fds": True, "start_new_session": True}
        if self.run_as is not None:
            kw["env"]["HOME"] = self.run_as.pw_dir
            kw["env"]["USER"] = kw["env"]["LOGNAME"] = self.run_as.pw_name
            if os.geteuid() == 0:
                kw.update(user=self.run_as.pw_uid, group=self.run_as.pw_gid, extra_groups=[])
        return kw

    # ---- webhooks --------------------------------------------------------------------------------
    def name_allowed(self, host):
        h = host.lower().rstrip(".")
        return any(h == n or (n.startswith("*.") and h.endswith(n[1:])) for n in self.names)

    def address_allowed(self, addr):
        ip = _ip(addr)
        return ip is not None and any(ip in net for net in self.networks)

    def check_url(self, url):
        host = urlsplit(url).hostname or ""
        if not host:
            raise ValueError("%s: no host in the webhook URL" % url)
        if not self.restricts_webhooks or self.name_allowed(host):
            return
        if _ip(host) is not None:
            if not self.address_allowed(host):
                raise ActionRefused("%s: %s is not in %s" % (url, host, WEBHOOK_KEY))
        elif not self.networks:
            raise ActionRefused("%s: host %s is not in %s" % (url, host, WEBHOOK_KEY))
        # a host name with CIDRs configured: its addresses are checked when connecting

    def resolver(self):
        """An aiohttp resolver keeping only the allowed addresses of a host name."""
        import aiohttp
        from aiohttp.abc import AbstractResolver
        policy = self

        class AllowListResolver(AbstractResolver):
            def __init__(self):
                self.inner = aiohttp.ThreadedResolver()

            async def resolve(self, host, port=0, family=socket.AF_INET):
                found = await self.inner.resolve(host, port, family)
                if not policy.restricts_webhooks or policy.name_allowed(host):
                    return found
                kept = [r for r in found if policy.address_allowed(r["host"])]
                if not kept:
                    raise OSError(errno.EACCES, "webhook host %s resolves to %s, outside %s"
                                  % (host, ", ".join(sorted({r["host"] for r in found})), WEBHOOK_KEY))
                return kept

            async def close(self):
                await self.inner.close()

        return AllowListResolver()
