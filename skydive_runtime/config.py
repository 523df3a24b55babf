"""Configuration: YAML files merged in order, `SKYDIVE_*` environment overrides, upstream defaults.

Keys are dotted (`analyzer.listen`). A value of the wrong type raises ConfigError naming the key.
"""

import copy
import os
import socket

import yaml


class ConfigError(ValueError):
    pass


DEFAULTS = {
    "host_id": "",
    "analyzers": [],
    "analyzer": {
        "listen": "127.0.0.1:8082",
        "auth": {"api": {"backend": "noauth"}, "cluster": {"backend": "noauth", "username": "", "password": ""}},
        "topology": {"backend": "sqlite", "probes": [], "fabric": [],
                     "ovn": {"address": "unix:///var/run/ovn/ovnnb_db.sock", "sb_address": ""}},
        "flow": {"backend": "sqlite", "max_buffer_size": 100000},
        "startup": {"capture_gremlin": "", "capture_bpf": "", "capture_type": ""},
        "capture": {"debounce": 0.2},
        "alert": {"debounce": 0.1, "min_period": 0.1, "action_timeout": 10.0,
                  "scripts_dirs": [], "run_as": "", "webhook_allowed": []},
    },
    "agent": {
        "listen": "127.0.0.1:8081",
        "auth": {"api": {"backend": "noauth"}, "cluster": {"username": "", "password": ""}},
        "topology": {
            "probes": ["ovsdb"],
            "docker": {"url": "unix:///var/run/docker.sock"},
            "netns": {"run_path": "/var/run/netns"},
            "netlink": {"metrics_update": 30},
            "lldp": {"interfaces": []},
        },
        "metadata": {},
        "capture": {"stats_update": 1},
        "injection": {"stats_update": 3.0},
        "flow": {
            "sflow": {"bind_address": "127.0.0.1", "port_min": 6345, "port_max": 6355},
            "netflow": {"bind_address": "127.0.0.1", "port_min": 6365, "port_max": 6375},
            "pcapsocket": {"bind_address": "127.0.0.1", "min_port": 8100, "max_port": 8132},
        },
    },
    "flow": {
        "expire": 600, "update": 60, "max_entries": 500000, "protocol": "websocket",
        "default_layer_key_mode": "L2", "application_ports": {"tcp": {}, "udp": {}},
        "application_timeout": {"arp": 10, "dns": 10},
    },
    "ovs": {"ovsdb": "unix:///var/run/openvswitch/db.sock", "enable_stats": False},
    "http": {"ws": {"ping_delay": 2, "pong_timeout": 5, "queue_size": 10000, "bulk_maxmsgs": 100,
                    "bulk_maxdelay": 0.02, "enable_write_compression": False}, "cookie": {},
             "allowed_origins": [], "session": {"secret": "", "ttl": 86400},
             "login": {"max_failures": 10, "period": 60}},
    "storage": {
        "sqlite": {"driver": "sqlite", "path": "/var/lib/skydive/skydive.db", "retention": "7d"},
        "memory": {"driver": "memory"},
    },
    "auth": {
        "noauth": {"type": "noauth"},
        "basic": {"type": "basic"},
    },
    "etcd": {"servers": [], "embedded": False, "client_timeout": 5, "listen": "127.0.0.1:12379",
             "data_dir": "/var/lib/skydive/etcd", "max_wal_files": 5, "max_snap_files": 5},
    "tls": {},
    "logging": {"level": "INFO"},
    "rbac": {"policy": []},
}

# deprecated keys still honoured (upstream config.go relocationMap)
RELOCATIONS = {
    "graph.backend": "analyzer.topology.backend",
    "analyzer.storage.backend": "analyzer.flow.backend",
    "netns.run_path": "agent.topology.netns.run_path",
    "auth.type": "analyzer.auth.api.backend",
}


def deep_merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _flatten(d, prefix=""):
    for k, v in d.items():
        key = prefix + str(k)
        yield key, v
        if isinstance(v, dict):
            yield from _flatten(v, key + ".")


def env_name(key):
    return "SKYDIVE_" + key.replace(".", "_").replace("-", "_").upper()


def _coerce_env(raw, like, key):
    if isinstance(like, bool):
        low = raw.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError("%s (from %s): %r is not a boolean" % (key, env_name(key), raw))
    if isinstance(like, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigError("%s (from %s): %r is not an integer" % (key, env_name(key), raw)) from None
    if isinstance(like, float):
        try:
            return float(raw)
        except ValueError:
            raise ConfigError("%s (from %s): %r is not a number" % (key, env_name(key), raw)) from None
    if isinstance(like, list):
        return [p for p in raw.replace(",", " ").split() if p]
    if isinstance(like, dict):
        try:
            v = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError("%s (from %s): not YAML: %s" % (key, env_name(key), exc)) from None
        if not isinstance(v, dict):
            raise ConfigError("%s (from %s): expected a map" % (key, env_name(key)))
        return v
    return raw


def parse_listen(value, key="listen"):
    """`addr:port`, `:port` (localhost) or a bare port → (host, port)."""
    s = str(value).strip()
    if not s:
        raise ConfigError("%s: empty listen address" % key)
    if s.isdigit():
        host, port = "127.0.0.1", s
    elif s.startswith("["):
        host, dummy, port = s[1:].partition("]:")
    else:
        host, sep, port = s.rpartition(":")
        if not sep:
            raise ConfigError("%s: %r is not addr:port" % (key, value))
        host = host or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        raise ConfigError("%s: port %r is not a number" % (key, port)) from None
    if not 0 <= p <= 65535:
        raise ConfigError("%s: port %d out of range" % (key, p))
    return host, p


class Config:
    def __init__(self, data=None):
        self.data = deep_merge(copy.deepcopy(DEFAULTS), data or {})

    @classmethod
    def load(cls, files=(), env=None, overrides=None):
        data = {}
        for path in files:
            try:
                with open(path) as fh:
                    loaded = yaml.safe_load(fh)
            except OSError as exc:
                raise ConfigError("cannot read config file %s: %s" % (path, exc.strerror)) from None
            except yaml.YAMLError as exc:
                raise ConfigError("config file %s is not valid YAML: %s" % (path, exc)) from None
            if loaded is None:
                continue
            if not isinstance(loaded, dict):
                raise ConfigError("config file %s must hold a map at the top level" % path)
            deep_merge(data, loaded)
        cfg = cls(data)
        for old, new in RELOCATIONS.items():
            v = cfg.get(old)
            if v is not None and v != "":
                cfg.set(new, v)
        cfg.apply_env(os.environ if env is None else env)
        for k, v in (overrides or {}).items():
            cfg.set(k, v)
        cfg.validate()
        return cfg

    def apply_env(self, env):
        for key, value in list(_flatten(self.data)):
            name = env_name(key)
            if name in env:
                self.set(key, _coerce_env(env[name], value, key))

    # ---- access ------------------------------------------------------------------------------
    def get(self, key, default=None):
        cur = self.data
        for part in key.split("."):
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
        return cur

    def set(self, key, value):
        parts = key.split(".")
        cur = self.data
        for part in parts[:-1]:
            nxt = cur.get(part)
            if not isinstance(nxt, dict):
                nxt = {}
                cur[part] = nxt
            cur = nxt
        cur[parts[-1]] = value

    def get_string(self, key, default=""):
        v = self.get(key, default)
        if v is None:
            return default
        if isinstance(v, (dict, list)):
            raise ConfigError("%s: expected a string, got %s" % (key, type(v).__name__))
        return str(v)

    def get_int(self, key, default=0, minimum=None):
        v = self.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise ConfigError("%s: expected an integer, got %r" % (key, v))
        try:
            i = int(v)
        except ValueError:
            raise ConfigError("%s: expected an integer, got %r" % (key, v)) from None
        if minimum is not None and i < minimum:
            raise ConfigError("%s: must be >= %d, got %d" % (key, minimum, i))
        return i

    def get_float(self, key, default=0.0):
        v = self.get(key, default)
        try:
            return float(v)
        except (TypeError, ValueError):
            raise ConfigError("%s: expected a number, got %r" % (key, v)) from None

    def get_bool(self, key, default=False):
        v = self.get(key, default)
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "1", "0"):
            return v.lower() in ("true", "yes", "1")
        raise ConfigError("%s: expected a boolean, got %r" % (key, v))

    def get_list(self, key, default=None):
        v = self.get(key, default if default is not None else [])
        if v is None:
            return []
        if isinstance(v, str):
            return [p for p in v.replace(",", " ").split() if p]
        if not isinstance(v, list):
            raise ConfigError("%s: expected a list, got %r" % (key, v))
        return v

    def get_map(self, key):
        v = self.get(key, {})
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ConfigError("%s: expected a map, got %r" % (key, v))
        return v

    def get_listen(self, key):
        return parse_listen(self.get_string(key), key)

    def host_id(self):
        return self.get_string("host_id") or socket.gethostname()

    def storage_section(self, backend_key):
        """The `storage.<name>` section named by backend_key (e.g. analyzer.topology.backend)."""
        name = self.get_string(backend_key) or "memory"
        section = self.get("storage.%s" % name)
        if section is None:
            if name in ("memory", "sqlite"):
                section = {"driver": name}
            else:
                raise ConfigError("%s: no storage section 'storage.%s' is configured" % (backend_key, name))
        if not isinstance(section, dict):
            raise ConfigError("storage.%s: expected a map" % name)
        return name, section

    def validate(self):
        for key in ("flow.expire", "flow.update"):
            if self.get_int(key) <= 0:
                raise ConfigError("%s: must be > 0" % key)
        for key in ("analyzer.listen", "agent.listen"):
            self.get_listen(key)
        for a in self.get_list("analyzers"):
            parse_listen(a, "analyzers")
        for key in ("http.ws.ping_delay", "http.ws.pong_timeout", "http.ws.queue_size"):
            if self.get_float(key) <= 0:
                raise ConfigError("%s: must be > 0" % key)
        mode = self.get_string("flow.default_layer_key_mode")
        if mode not in ("L2", "L3"):
            raise ConfigError("flow.default_layer_key_mode: must be L2 or L3, got %r" % mode)
        return self

    def public_value(self, key):
        """Value for GET /api/config/<key>: nil normalised to ''."""
        v = self.get(key)
        return "" if v is None else v
