"""Offline checker for TripleO service templates, environments and roles.

Re-implements the rules of tripleo-heat-templates' tools/yaml-validate.py that make sense
outside a full THT tree (that script always fails without endpoint_map.yaml and the four
endpoint environment files):

  1. every *.yaml (not *.j2.yaml) parses with yaml.SafeLoader; environments/services-docker
     files are rejected
  2. heat_template_version is a valid alias (warning when not the newest)
  3. templates with parameters define EndpointMap, ServiceNetMap, RoleName, RoleParameters
     and ServiceData
  4. warning for a non-required parameter that nothing uses
  5. a parameter defined in several templates has the same definition everywhere
  6. service templates: role_data has value and service_name; service_name starts with the
     file name minus its last two dash parts, dashes turned to underscores
  7. container services: required/allowed role_data keys, puppet_config keys and its
     Container<Camel>ConfigImage parameter, bootstrap_host_exec as root; Ansible task
     sections are lists, never {}
  8. upgrade_tasks: `step|int ==` first in list-form when, readability warning for string
     `and`, no duplicated when lines
  9. hiera interpolation of ServiceNetMap in role_data (files whose path contains "ansible",
     external_deploy_tasks, deploy_steps_tasks and kolla_config are exempt, as upstream)
 10. resources: software deployments need properties.name, software configs no outputs
 11. roles/*.yaml: `name` equals the file name; roles_data files hold a list of roles with
     name and ServicesDefault

Plus checks that only make sense for a standalone service tree: every resource_registry
path of an environment file exists, and every OS::TripleO::Services entry of a role is
registered by some environment file given.

Usage: validate-templates.py [-q] [PATH ...]   (default: the tripleo/ directory)
Exit status 1 when any error was found.
"""
import argparse
import os
import re
import sys

import yaml

VALID_HEAT_TEMPLATE_VERSIONS = ["rocky", "wallaby"]
CURRENT_HEAT_TEMPLATE_VERSION = "wallaby"
REQUIRED_PARAMS = ["EndpointMap", "ServiceNetMap", "RoleName", "RoleParameters", "ServiceData"]
# parameters whose definitions legitimately differ between files (upstream exclusion table)
PARAMETER_DEFINITION_EXCLUSIONS = {
    "ServiceNetMap": ["description", "default"],
    "EndpointMap": ["description", "default"],
    "DefaultPasswords": ["description", "default"],
    "RoleName": ["description", "default"],
    "RoleParameters": ["description", "default"],
    "ServiceData": ["description", "default"],
}
CONTAINER_REQUIRED_KEYS = ["service_name", "docker_config", "puppet_config", "config_settings"]
OPTIONAL_DOCKER_KEYS = ["docker_puppet_tasks", "container_puppet_tasks", "host_prep_tasks",
                        "metadata_settings", "kolla_config", "global_config_settings",
                        "external_deploy_tasks", "external_post_deploy_tasks",
                        "container_config_scripts", "step_config", "monitoring_subscription",
                        "scale_tasks", "external_update_tasks", "external_upgrade_tasks"]
OPTIONAL_KEYS = ["config_settings", "service_config_settings", "firewall_rules", "upgrade_tasks",
                 "post_upgrade_tasks", "pre_upgrade_rolling_tasks", "update_tasks",
                 "post_update_tasks", "deploy_steps_tasks", "ansible_group_vars", "cellv2_discovery",
                 "keystone_resources", "firewall_frontend_rules", "firewall_edge_frontend_rules",
                 "external_deploy_tasks", "external_post_deploy_tasks", "host_prep_tasks",
                 "metadata_settings", "global_config_settings", "monitoring_subscription",
                 "step_config", "scale_tasks", "external_update_tasks", "external_upgrade_tasks"]
ANSIBLE_TASK_SECTIONS = ["config_settings", "service_config_settings", "host_prep_tasks",
                         "deploy_steps_tasks", "external_deploy_tasks", "external_post_deploy_tasks",
                         "upgrade_tasks", "post_upgrade_tasks", "pre_upgrade_rolling_tasks",
                         "update_tasks", "post_update_tasks", "external_update_tasks",
                         "external_upgrade_tasks", "scale_tasks"]
TASK_LIST_SECTIONS = [s for s in ANSIBLE_TASK_SECTIONS if s.endswith("_tasks")]
PUPPET_CONFIG_KEYS = ["config_volume", "step_config", "config_image", "puppet_tags", "volumes"]
PUPPET_CONFIG_REQUIRED = ["config_volume", "step_config", "config_image"]
HIERA_EXEMPT_SECTIONS = ["external_deploy_tasks", "deploy_steps_tasks", "kolla_config",
                         "external_post_deploy_tasks", "host_prep_tasks"]
SOFTWARE_DEPLOYMENTS = ["OS::Heat::SoftwareDeployment", "OS::Heat::StructuredDeployment",
                        "OS::Heat::SoftwareDeploymentGroup", "OS::Heat::StructuredDeploymentGroup",
                        "OS::TripleO::SoftwareDeployment"]
SOFTWARE_CONFIGS = ["OS::Heat::SoftwareConfig", "OS::Heat::StructuredConfig"]


class Report:
    def __init__(self, quiet=False):
        self.errors = []
        self.warnings = []
        self.quiet = quiet

    def error(self, path, msg):
        self.errors.append((path, msg))
        print("ERROR: %s: %s" % (path, msg))

    def warn(self, path, msg):
        self.warnings.append((path, msg))
        if not self.quiet:
            print("WARNING: %s: %s" % (path, msg))


def _walk_yaml(paths):
    for p in paths:
        if os.path.isdir(p):
            for dirpath, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if f.endswith(".yaml") and not f.endswith(".j2.yaml"):
                        yield os.path.join(dirpath, f)
        elif p.endswith(".yaml") and not p.endswith(".j2.yaml"):
            yield p


def _search(obj, pred, path=()):
    """Yield (path, node) for every node of obj satisfying pred."""
    if pred(obj):
        yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _search(v, pred, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _search(v, pred, path + (i,))


def _flatten_map_merge(value):
    """role_data value written as map_merge of dicts: merge the literal dicts."""
    if isinstance(value, dict) and list(value) == ["map_merge"] and isinstance(value["map_merge"], list):
        out = {}
        for part in value["map_merge"]:
            if isinstance(part, dict):
                out.update(_flatten_map_merge(part))
        return out
    return value


def _role_data(tpl):
    outputs = tpl.get("outputs") or {}
    return outputs.get("role_data")


def check_heat_version(path, tpl, rep):
    version = tpl.get("heat_template_version")
    if version is None:
        return
    version = str(version)
    if version not in VALID_HEAT_TEMPLATE_VERSIONS:
        rep.error(path, "heat_template_version %s is not one of %s" % (version, VALID_HEAT_TEMPLATE_VERSIONS))
    elif version != CURRENT_HEAT_TEMPLATE_VERSION:
        rep.warn(path, "heat_template_version %s is not the current %s" % (version, CURRENT_HEAT_TEMPLATE_VERSION))


def check_parameters(path, tpl, rep):
    params = tpl.get("parameters")
    if params is None:
        return
    if not isinstance(params, dict):
        rep.error(path, "parameters must be a map")
        return
    for req in REQUIRED_PARAMS:
        if req not in params:
            rep.error(path, "missing required parameter %s" % req)
    used_text = yaml.safe_dump({k: tpl.get(k) for k in ("resources", "outputs", "conditions", "parameter_groups")})
    for name in params:
        if name in REQUIRED_PARAMS:
            continue
        if not re.search(r"(['\"]?)\b%s\b\1" % re.escape(name), used_text):
            rep.warn(path, "parameter %s is defined but never used" % name)
        definition = params[name]
        if not isinstance(definition, dict) or "type" not in definition:
            rep.error(path, "parameter %s has no type" % name)


def check_parameter_consistency(templates, rep):
    seen = {}
    for path, tpl in templates:
        for name, definition in (tpl.get("parameters") or {}).items():
            if not isinstance(definition, dict):
                continue
            ignored = PARAMETER_DEFINITION_EXCLUSIONS.get(name, [])
            key = {k: v for k, v in definition.items() if k not in ignored}
            if name in seen:
                first_path, first = seen[name]
                if first != key:
                    rep.error(path, "parameter %s is defined differently in %s: %s != %s"
                              % (name, first_path, key, first))
            else:
                seen[name] = (path, key)


def _service_prefix(path):
    base = os.path.basename(path)[:-len(".yaml")]
    parts = base.split("-")
    return "_".join(parts[:-2]) if len(parts) > 2 else base.replace("-", "_")


def check_service_template(path, tpl, rep):
    role_data = _role_data(tpl)
    if role_data is None:
        return
    if not isinstance(role_data, dict) or "value" not in role_data:
        rep.error(path, "outputs.role_data has no value")
        return
    value = _flatten_map_merge(role_data["value"])
    if not isinstance(value, dict):
        return
    name = value.get("service_name")
    if not name:
        rep.error(path, "role_data has no service_name")
    elif not isinstance(name, str) or not name.startswith(_service_prefix(path)):
        rep.error(path, "service_name %s must start with %s (the file name less its last two dash parts)"
                  % (name, _service_prefix(path)))
    for section in ANSIBLE_TASK_SECTIONS:
        if section in value and value[section] == {}:
            rep.error(path, "role_data %s must not be {}" % section)
    for section in TASK_LIST_SECTIONS:
        tasks = value.get(section)
        if tasks is not None and not isinstance(tasks, list) and not (
                isinstance(tasks, dict) and len(tasks) == 1 and next(iter(tasks)) in ("list_concat", "if", "get_attr")):
            rep.error(path, "role_data %s must be a list of tasks" % section)
    if "firewall_rules" in value:
        rules = value["firewall_rules"]
        if not isinstance(rules, dict):
            rep.error(path, "firewall_rules must be a map of 'NNN name' -> rule")
        else:
            for rule_name, rule in rules.items():
                if not re.match(r"^\d{3} \S", str(rule_name)):
                    rep.error(path, "firewall rule name %r must be 'NNN name'" % rule_name)
                if not isinstance(rule, dict) or not ({"dport", "proto", "source", "jump"} & set(rule)):
                    rep.error(path, "firewall rule %r has no dport/proto/source" % rule_name)
    is_container = re.search(r"-container-puppet\.yaml$", path) or "docker_config" in value
    if is_container:
        for key in CONTAINER_REQUIRED_KEYS:
            if key not in value:
                rep.error(path, "container service role_data misses %s" % key)
        allowed = set(CONTAINER_REQUIRED_KEYS + OPTIONAL_DOCKER_KEYS + OPTIONAL_KEYS)
        for key in value:
            if key not in allowed:
                rep.error(path, "extra in role_data: %s" % key)
        pc = value.get("puppet_config")
        if isinstance(pc, dict):
            for key in pc:
                if key not in PUPPET_CONFIG_KEYS:
                    rep.error(path, "puppet_config has unexpected key %s" % key)
            for key in PUPPET_CONFIG_REQUIRED:
                if key not in pc:
                    rep.error(path, "puppet_config misses %s" % key)
            volume = pc.get("config_volume")
            if isinstance(volume, str):
                camel = "".join(p.capitalize() for p in re.split(r"[_-]", volume))
                pname = "Container%sConfigImage" % camel
                if pname not in (tpl.get("parameters") or {}):
                    rep.error(path, "puppet_config needs parameter %s" % pname)
        dc = value.get("docker_config")
        if isinstance(dc, dict):
            for step, containers in dc.items():
                for cname, cdef in (containers or {}).items():
                    if isinstance(cdef, dict) and "bootstrap_host_exec" in str(cdef.get("command", "")) \
                            and cdef.get("user") != "root":
                        rep.error(path, "container %s uses bootstrap_host_exec and must run as user root" % cname)
    else:
        allowed = set(["service_name"] + OPTIONAL_KEYS + OPTIONAL_DOCKER_KEYS)
        for key in value:
            if key not in allowed:
                rep.error(path, "extra in role_data: %s" % key)
    check_upgrade_tasks(path, value.get("upgrade_tasks"), rep)
    check_hiera(path, value, rep)


def check_upgrade_tasks(path, tasks, rep):
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, dict):
            continue
        when = task.get("when")
        name = task.get("name", "?")
        if isinstance(when, list):
            steps = [i for i, w in enumerate(when) if isinstance(w, str) and "step|int" in w.replace(" ", "")]
            if steps and not (isinstance(when[0], str) and when[0].replace(" ", "").startswith("step|int==")):
                rep.error(path, "upgrade task %r: the step|int == condition must come first" % name)
        elif isinstance(when, str) and " and " in when and " or " not in when:
            rep.warn(path, "upgrade task %r: write the 'and' conditions as a list" % name)
    # duplicated when lines within one task cannot be seen after parsing; checked on the text
    # by check_duplicate_when


def check_duplicate_when(path, text, rep):
    task_whens = 0
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            task_whens = 0
            stripped = stripped[2:].strip()
        if stripped.startswith("when:"):
            task_whens += 1
            if task_whens > 1:
                rep.error(path, "duplicated when: in one task (%s)" % stripped)


def check_hiera(path, value, rep):
    if "ansible" in path:
        return
    for section, content in value.items():
        if section in HIERA_EXEMPT_SECTIONS:
            continue
        for loc, node in _search(content, lambda n: isinstance(n, dict) and "get_param" in n
                                 and isinstance(n["get_param"], list) and n["get_param"][:1] == ["ServiceNetMap"]):
            inside = _inside_hiera_str_replace(content, loc)
            if not inside and not str(node["get_param"][-1]).endswith("Network"):
                rep.error(path, "get_param ServiceNetMap in role_data.%s must sit in a str_replace using "
                          "%%{hiera('...NETWORK...')}" % section)


def _inside_hiera_str_replace(root, loc):
    node = root
    for step in loc:
        if isinstance(node, dict) and "str_replace" in node:
            tmpl = (node["str_replace"] or {}).get("template", "")
            if "%{hiera(" in str(tmpl):
                return True
        node = node[step]
    return False


def check_resources(path, tpl, rep):
    for rname, res in (tpl.get("resources") or {}).items():
        if not isinstance(res, dict):
            continue
        rtype = res.get("type")
        if rtype in SOFTWARE_DEPLOYMENTS and "name" not in (res.get("properties") or {}):
            rep.error(path, "resource %s (%s) needs properties.name" % (rname, rtype))
        if rtype in SOFTWARE_CONFIGS and "outputs" in (res.get("properties") or {}):
            rep.error(path, "resource %s (%s) must not use outputs (config-download)" % (rname, rtype))
        if rtype == "OS::Heat::StructuredConfig" and "os-apply-config" in str(res.get("properties", {})):
            rep.error(path, "resource %s uses an old-style os-apply-config NIC config" % rname)


def check_roles(path, data, rep):
    if not isinstance(data, list):
        rep.error(path, "a roles file holds a list of roles")
        return []
    names = []
    for role in data:
        if not isinstance(role, dict) or "name" not in role:
            rep.error(path, "role without name")
            continue
        names.append(role["name"])
        services = role.get("ServicesDefault")
        if not isinstance(services, list):
            rep.error(path, "role %s has no ServicesDefault list" % role["name"])
            continue
        if len(set(services)) != len(services):
            rep.error(path, "role %s lists a service twice" % role["name"])
        for s in services:
            if not isinstance(s, str) or not s.startswith("OS::TripleO::Services::"):
                rep.error(path, "role %s: %r is not an OS::TripleO::Services resource" % (role["name"], s))
    if os.path.basename(os.path.dirname(path)) == "roles":
        base = os.path.basename(path)[:-len(".yaml")]
        if names != [base]:
            rep.error(path, "roles/%s.yaml must define exactly the role %s (found %s)" % (base, base, names))
    return [s for role in data if isinstance(role, dict) for s in (role.get("ServicesDefault") or [])]


def check_environment(path, env, rep, registered):
    for key, target in (env.get("resource_registry") or {}).items():
        if not isinstance(target, str) or target.startswith("OS::") or target.startswith("http"):
            registered.add(key)
            continue
        full = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if not os.path.exists(full):
            rep.error(path, "resource_registry %s points to missing %s" % (key, target))
        registered.add(key)


def classify(doc):
    if isinstance(doc, list):
        return "roles"
    if not isinstance(doc, dict):
        return "other"
    if "heat_template_version" in doc:
        return "template"
    if "resource_registry" in doc or "parameter_defaults" in doc:
        return "environment"
    return "other"


def validate(paths, quiet=False):
    rep = Report(quiet)
    templates = []
    registered = set()
    role_services = []
    for path in _walk_yaml(paths):
        if "environments/services-docker" in path.replace(os.sep, "/"):
            rep.error(path, "environments/services-docker is obsolete")
            continue
        with open(path) as fh:
            text = fh.read()
        try:
            doc = yaml.load(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            rep.error(path, "YAML parse error: %s" % exc)
            continue
        kind = classify(doc)
        if kind == "template":
            templates.append((path, doc))
            check_heat_version(path, doc, rep)
            check_parameters(path, doc, rep)
            check_service_template(path, doc, rep)
            check_resources(path, doc, rep)
            check_duplicate_when(path, text, rep)
        elif kind == "environment":
            check_environment(path, doc, rep, registered)
        elif kind == "roles":
            role_services.extend((path, s) for s in check_roles(path, doc, rep))
    check_parameter_consistency(templates, rep)
    if registered:
        for path, svc in role_services:
            if isinstance(svc, str) and svc.startswith("OS::TripleO::Services::Skydive") and svc not in registered:
                rep.error(path, "%s is not registered by any environment file" % svc)
    return rep


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    ap.add_argument("-q", "--quiet", action="store_true", help="do not print warnings")
    ap.add_argument("paths", nargs="*")
    args = ap.parse_args(argv)
    paths = args.paths or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    rep = validate(paths, quiet=args.quiet)
    print("%d errors, %d warnings" % (len(rep.errors), len(rep.warnings)))
    return 1 if rep.errors else 0


if __name__ == "__main__":
    sys.exit(main())
