"""Resolve TripleO environment files the way `openstack overcloud deploy -e` does and write
the resulting role_data as config-download style Ansible files.

  process-environment.py -e tripleo/skydive-environment.yaml -r tripleo/roles_data.yaml \
      --hosts hosts.yaml -o OUT
  ansible-playbook -i OUT/inventory.yaml OUT/deploy_steps_playbook.yaml

Steps:
  1. environments: resource_registry paths resolved relative to their environment file and
     merged in order, parameter_defaults merged in order (python-heatclient's
     template_utils.process_multiple_environments_and_files when it is installed, else the
     same resolution built in; --resolver picks one);
  2. every OS::TripleO::Services::* not registered maps to OS::Heat::None (the THT default
     registry), so roles may list services that are not enabled;
  3. for each role of roles_data and each service of its ServicesDefault, the service template
     is loaded, its parameters are bound (template defaults < parameter_defaults <
     <Role>Parameters for RoleParameters; RoleName, ServiceNetMap, EndpointMap, ServiceData
     and DeployIdentifier supplied like overcloud.yaml does) with type and allowed_values
     checks, and outputs.role_data is evaluated (get_param, str_replace, list_join,
     map_merge, list_concat, if/equals/not/and/or with the template's conditions);
  4. OUT/role_data.json holds the evaluated role_data of every role; OUT/<Role>/ holds
     deploy_steps_tasks.yaml, host_prep_tasks.yaml, external_*_tasks.yaml and
     firewall_rules.yaml; OUT/deploy_steps_playbook.yaml runs host_prep_tasks then steps
     0..5 of deploy_steps_tasks on every role (and external_deploy_tasks on the
     undercloud), then external_post_deploy_tasks; with --hosts, OUT/inventory.yaml has the
     config-download groups: one per role, `overcloud`, and one per service_name.
"""
import argparse
import copy
import json
import os
import sys
import urllib.parse

import yaml

SERVICE_PREFIX = "OS::TripleO::Services::"
NONE = "OS::Heat::None"
DEFAULT_SERVICE_NET_MAP = {"SkydiveAnalyzerNetwork": "ctlplane", "SkydiveAgentNetwork": "ctlplane"}
DEFAULT_ENDPOINT_MAP = {"KeystoneInternal": {"protocol": "http", "host": "127.0.0.1", "port": "5000",
                                             "uri": "http://127.0.0.1:5000", "uri_no_suffix": "http://127.0.0.1:5000"}}
TASK_SECTIONS = ["host_prep_tasks", "deploy_steps_tasks", "external_deploy_tasks",
                 "external_post_deploy_tasks", "upgrade_tasks", "update_tasks", "scale_tasks"]
STEPS = range(0, 6)


class HeatError(Exception):
    pass


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):
        return True


def _dump(data, fh):
    yaml.dump(data, fh, Dumper=_NoAliasDumper, sort_keys=False, width=1000)


# ---- 1. environments ---------------------------------------------------------------------------

def _deep_merge(base, extra):
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


def _merge_parameter_defaults(merged, env):
    strategies = env.get("parameter_merge_strategies") or {}
    for k, v in (env.get("parameter_defaults") or {}).items():
        if strategies.get(k, strategies.get("default")) == "merge" and isinstance(v, dict) \
                and isinstance(merged.get(k), dict):
            _deep_merge(merged[k], v)
        else:
            merged[k] = copy.deepcopy(v)


def resolve_builtin(env_paths):
    registry, params = {}, {}
    for path in env_paths:
        with open(path) as fh:
            env = yaml.safe_load(fh) or {}
        base = os.path.dirname(os.path.abspath(path))
        for key, target in (env.get("resource_registry") or {}).items():
            if isinstance(target, str) and not target.startswith("OS::") and "://" not in target:
                target = "file://" + os.path.normpath(os.path.join(base, target))
            registry[key] = target
        _merge_parameter_defaults(params, env)
    return registry, params


def resolve_heatclient(env_paths):
    from heatclient.common import template_utils
    _files, env = template_utils.process_multiple_environments_and_files(env_paths=list(env_paths))
    registry = dict(env.get("resource_registry") or {})
    registry.pop("resources", None)
    params = {}
    _merge_parameter_defaults(params, {"parameter_defaults": env.get("parameter_defaults") or {},
                                       "parameter_merge_strategies": env.get("parameter_merge_strategies")})
    return registry, params


def heatclient_available():
    try:
        from heatclient.common import template_utils  # noqa: F401
        return True
    except ImportError:
        return False


def _load_url(url):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("file", ""):
        raise HeatError("only local templates are supported: %s" % url)
    path = urllib.parse.unquote(parsed.path)
    with open(path) as fh:
        return path, yaml.safe_load(fh)


# ---- 3. template evaluation ---------------------------------------------------------------------

class Evaluator:
    def __init__(self, path, template, params):
        self.path = path
        self.template = template
        self.params = params
        self.conditions = {}
        for name, cond in (template.get("conditions") or {}).items():
            self.conditions[name] = bool(self.eval(cond))

    def get_param(self, arg):
        path = arg if isinstance(arg, list) else [arg]
        path = [self.eval(p) for p in path]
        name = path[0]
        if name not in self.params:
            raise HeatError("%s: get_param of undefined parameter %s" % (self.path, name))
        value = self.params[name]
        for key in path[1:]:
            if isinstance(value, dict):
                value = value.get(key, "")
            elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
                value = value[key]
            else:
                value = ""  # Heat returns '' for a missing path
        return value

    def eval(self, node):
        if isinstance(node, list):
            return [self.eval(n) for n in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            fn, arg = next(iter(node.items()))
            handler = {
                "get_param": self.get_param,
                "str_replace": self.str_replace,
                "list_join": self.list_join,
                "map_merge": self.map_merge,
                "list_concat": self.list_concat,
                "if": self.if_,
                "equals": lambda a: self.eval(a[0]) == self.eval(a[1]),
                "not": lambda a: not self._cond(a),
                "and": lambda a: all(self._cond(x) for x in a),
                "or": lambda a: any(self._cond(x) for x in a),
            }.get(fn)
            if handler:
                return handler(arg)
            if fn in ("get_attr", "get_resource", "yaql", "repeat", "digest", "str_split",
                      "get_file", "filter", "make_url", "contains", "map_replace", "str_replacestrict",
                      "str_replace_vstrict", "list_concat_unique", "resource_facade"):
                raise HeatError("%s: intrinsic function %s is not supported offline" % (self.path, fn))
        return {k: self.eval(v) for k, v in node.items()}

    def _cond(self, c):
        if isinstance(c, str) and c in self.conditions:
            return self.conditions[c]
        return bool(self.eval(c))

    def str_replace(self, arg):
        tmpl = self.eval(arg.get("template"))
        params = self.eval(arg.get("params") or {})
        if not isinstance(tmpl, str):
            raise HeatError("%s: str_replace template must be a string" % self.path)
        for key in sorted(params, key=lambda k: -len(str(k))):
            val = params[key]
            if isinstance(val, (dict, list)):
                val = json.dumps(val)
            elif val is None:
                val = ""
            tmpl = tmpl.replace(str(key), str(val))
        return tmpl

    def list_join(self, arg):
        delim = self.eval(arg[0])
        items = []
        for part in arg[1:]:
            part = self.eval(part)
            if not isinstance(part, list):
                raise HeatError("%s: list_join takes lists" % self.path)
            items.extend(part)
        return delim.join(json.dumps(i) if isinstance(i, (dict, list)) else str(i) for i in items)

    def map_merge(self, arg):
        out = {}
        for part in self.eval(arg):
            if not isinstance(part, dict):
                raise HeatError("%s: map_merge: items to merge must be maps, got %r" % (self.path, part))
            out.update(copy.deepcopy(part))
        return out

    def list_concat(self, arg):
        out = []
        for part in self.eval(arg):
            if not isinstance(part, list):
                raise HeatError("%s: list_concat: items must be lists" % self.path)
            out.extend(part)
        return out

    def if_(self, arg):
        cond, yes, no = arg
        return self.eval(yes) if self._cond(cond) else self.eval(no)


def bind_parameters(path, template, role, parameter_defaults, deploy_identifier):
    declared = template.get("parameters") or {}
    values = {}
    role_params = parameter_defaults.get("%sParameters" % role["name"], {}) or {}
    supplied = {
        "RoleName": role["name"],
        "RoleParameters": dict(role.get("RoleParametersDefault") or {}, **role_params),
        "ServiceNetMap": _deep_merge(copy.deepcopy(DEFAULT_SERVICE_NET_MAP),
                                     parameter_defaults.get("ServiceNetMap") or {}),
        "EndpointMap": _deep_merge(copy.deepcopy(DEFAULT_ENDPOINT_MAP), parameter_defaults.get("EndpointMap") or {}),
        "ServiceData": {"net_cidr_map": parameter_defaults.get("NetCidrMap", {})},
        "DeployIdentifier": parameter_defaults.get("DeployIdentifier", deploy_identifier),
    }
    for name, spec in declared.items():
        if name in supplied:
            value = supplied[name]
        elif name in role_params:
            value = role_params[name]
        elif name in parameter_defaults:
            value = parameter_defaults[name]
        elif "default" in spec:
            value = spec["default"]
        else:
            raise HeatError("%s: parameter %s has no value" % (path, name))
        values[name] = _check_param(path, name, spec, value)
    return values


def _check_param(path, name, spec, value):
    ptype = spec.get("type", "string")
    if ptype == "number":
        try:
            value = int(value) if str(value).lstrip("-").isdigit() else float(value)
        except (TypeError, ValueError):
            raise HeatError("%s: parameter %s must be a number, got %r" % (path, name, value)) from None
    elif ptype == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value) if value else {}
            except ValueError:
                raise HeatError("%s: parameter %s must be JSON, got %r" % (path, name, value)) from None
        if not isinstance(value, (dict, list)):
            raise HeatError("%s: parameter %s must be a map or list, got %r" % (path, name, value))
    elif ptype == "boolean":
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                raise HeatError("%s: parameter %s must be a boolean, got %r" % (path, name, value))
            value = value.lower() in ("true", "yes", "1", "on")
        value = bool(value)
    elif ptype == "comma_delimited_list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
    elif ptype == "string":
        if isinstance(value, (dict, list)):
            raise HeatError("%s: parameter %s must be a string" % (path, name))
        value = "" if value is None else str(value)
    for constraint in spec.get("constraints") or []:
        allowed = constraint.get("allowed_values")
        if allowed is not None and value not in allowed:
            raise HeatError("%s: parameter %s: %r is not one of %s" % (path, name, value, allowed))
    return value


# ---- 4. output ---------------------------------------------------------------------------------

def process(env_paths, roles_path, resolver="auto", deploy_identifier=""):
    if resolver == "auto":
        resolver = "heatclient" if heatclient_available() else "builtin"
    registry, parameter_defaults = (resolve_heatclient if resolver == "heatclient" else resolve_builtin)(env_paths)
    with open(roles_path) as fh:
        roles = yaml.safe_load(fh)
    result = {"resolver": resolver, "roles": {}}
    for role in roles:
        data = {"services": [], "service_names": [], "firewall_rules": {}}
        for section in TASK_SECTIONS:
            data[section] = []
        for service in role.get("ServicesDefault") or []:
            target = registry.get(service, NONE if service.startswith(SERVICE_PREFIX) else None)
            if target is None:
                raise HeatError("role %s: %s is not a registered resource type" % (role["name"], service))
            if target == NONE:
                continue
            path, template = _load_url(target)
            params = bind_parameters(path, template, role, parameter_defaults, deploy_identifier)
            ev = Evaluator(path, template, params)
            role_data = (template.get("outputs") or {}).get("role_data")
            if not role_data or "value" not in role_data:
                raise HeatError("%s: no outputs.role_data.value" % path)
            value = ev.eval(role_data["value"])
            data["services"].append(service)
            data["service_names"].append(value["service_name"])
            data["firewall_rules"].update(value.get("firewall_rules") or {})
            for section in TASK_SECTIONS:
                data[section].extend(value.get(section) or [])
        result["roles"][role["name"]] = data
    return result


def write_output(result, out, hosts=None, collection=None):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "role_data.json"), "w") as fh:
        json.dump(result, fh, indent=2, sort_keys=True)
    for role, data in result["roles"].items():
        rdir = os.path.join(out, role)
        os.makedirs(rdir, exist_ok=True)
        for section in TASK_SECTIONS:
            with open(os.path.join(rdir, section + ".yaml"), "w") as fh:
                _dump(data[section], fh)
        with open(os.path.join(rdir, "firewall_rules.yaml"), "w") as fh:
            yaml.safe_dump(data["firewall_rules"], fh, sort_keys=True)
    external = {s: [t for d in result["roles"].values() for t in _dedup_external(d, s)]
                for s in ("external_deploy_tasks", "external_post_deploy_tasks")}
    for section, tasks in external.items():
        with open(os.path.join(out, section + ".yaml"), "w") as fh:
            _dump(tasks, fh)
    plays = [{
        "name": "Host preparation",
        "hosts": "overcloud", "gather_facts": False, "any_errors_fatal": True,
        "tasks": [{"name": "Host prep tasks of the role",
                   "ansible.builtin.include_tasks": "{{ playbook_dir }}/{{ tripleo_role_name }}/host_prep_tasks.yaml"}],
    }]
    for step in STEPS:
        plays.append({
            "name": "External deployment step %d" % step, "hosts": "localhost", "connection": "local",
            "gather_facts": False, "vars": {"step": step},
            "tasks": [{"name": "External deploy tasks step %d" % step,
                       "ansible.builtin.include_tasks": "{{ playbook_dir }}/external_deploy_tasks.yaml"}],
        })
        plays.append({
            "name": "Overcloud deploy step %d" % step, "hosts": "overcloud", "gather_facts": False,
            "any_errors_fatal": True, "vars": {"step": step},
            "tasks": [{"name": "Deploy step %d tasks of the role" % step,
                       "ansible.builtin.include_tasks": "{{ playbook_dir }}/{{ tripleo_role_name }}/deploy_steps_tasks.yaml"}],
        })
    plays.append({
        "name": "External post deployment", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "tasks": [{"name": "External post deploy tasks",
                   "ansible.builtin.include_tasks": "{{ playbook_dir }}/external_post_deploy_tasks.yaml"}],
    })
    with open(os.path.join(out, "deploy_steps_playbook.yaml"), "w") as fh:
        fh.write("# Generated by tripleo/tools/process-environment.py (config-download layout)\n")
        _dump(plays, fh)
    if collection:
        link = os.path.join(out, "roles")
        if os.path.islink(link):
            os.unlink(link)
        os.symlink(os.path.join(os.path.abspath(collection), "roles"), link)
    if hosts is not None:
        inv = {"all": {"children": {"overcloud": {"children": {}}}}}
        services = {}
        for role, data in result["roles"].items():
            members = hosts.get(role) or {}
            inv["all"]["children"][role] = {
                "hosts": {h: dict({"ctlplane_ip": (v or {}).get("ansible_host", h)}, **(v or {}))
                          for h, v in members.items()},
                "vars": {"tripleo_role_name": role},
            }
            inv["all"]["children"]["overcloud"]["children"][role] = {}
            for name in data["service_names"]:
                services.setdefault(name, []).append(role)
        for name, rlist in services.items():
            inv["all"]["children"][name] = {"children": {r: {} for r in rlist}}
        with open(os.path.join(out, "inventory.yaml"), "w") as fh:
            yaml.safe_dump(inv, fh, sort_keys=False)


def _dedup_external(data, section):
    return data[section]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("-e", "--environment-file", action="append", required=True, dest="envs")
    ap.add_argument("-r", "--roles-file", required=True)
    ap.add_argument("-o", "--output-dir", required=True)
    ap.add_argument("--hosts", help="YAML map Role -> {host: {ansible vars}} for the inventory")
    ap.add_argument("--collection", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                    help="collection root whose roles/ the tasks apply (linked as OUT/roles)")
    ap.add_argument("--resolver", choices=["auto", "heatclient", "builtin"], default="auto")
    ap.add_argument("--deploy-identifier", default="")
    args = ap.parse_args(argv)
    try:
        result = process(args.envs, args.roles_file, args.resolver, args.deploy_identifier)
    except HeatError as exc:
        print("ERROR: %s" % exc, file=sys.stderr)
        return 1
    hosts = None
    if args.hosts:
        with open(args.hosts) as fh:
            hosts = yaml.safe_load(fh) or {}
    write_output(result, args.output_dir, hosts, args.collection)
    for role, data in result["roles"].items():
        print("%s: %s" % (role, ", ".join(data["service_names"]) or "-"))
    print("resolver: %s; output in %s" % (result["resolver"], args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
