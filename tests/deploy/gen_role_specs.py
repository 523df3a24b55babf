#!/usr/bin/env python3
"""Regenerate roles/skydive_{analyzer,agent}/meta/argument_specs.yml from skydive_common's.

skydive_common documents every variable; the service roles repeat the ones specific to
them (for ansible-doc and for their own start-of-role validation). Run this after editing
roles/skydive_common/meta/argument_specs.yml; test_roles_static.py fails when they drift.
"""
import os
import sys

import yaml

ROLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "roles")

SUBSETS = {
    "analyzer": ["skydive_state", "skydive_analyzer_port", "skydive_listen_ip", "skydive_analyzer_listen_ip", "skydive_auth_type",
                 "skydive_username", "skydive_password", "skydive_os_auth_url", "skydive_auth_os_tenant_name",
                 "skydive_auth_os_domain_name", "skydive_sys_username", "skydive_sys_groupname",
                 "skydive_data_dir", "skydive_deployment_test", "skydive_iptables_rules",
                 "skydive_health_timeout", "skydive_fabric", "skydive_etcd_servers",
                 "skydive_clickhouse", "skydive_etcd_embedded", "skydive_etcd_port", "skydive_clickhouse_deploy",
                 "skydive_clickhouse_port", "skydive_clickhouse_password"],
    "agent": ["skydive_state", "skydive_agent_port", "skydive_listen_ip", "skydive_agent_listen_ip", "skydive_topology_probes",
              "skydive_os_auth_url", "skydive_os_service_username", "skydive_os_service_password",
              "skydive_os_service_tenant_name", "skydive_os_service_domain_name", "skydive_os_service_region_name",
              "skydive_os_service_endpoint_type", "skydive_os_service_insecure",
              "skydive_iptables_rules", "skydive_health_timeout"],
}

HEADER = ("---\n# The option definitions are copies of skydive_common/meta/argument_specs.yml\n"
          "# (regenerate with tests/deploy/gen_role_specs.py; tests/deploy/test_roles_static.py checks).\n")


def render(service, common):
    opts = {n: common[n] for n in SUBSETS[service]}
    doc = {"argument_specs": {"main": {
        "short_description": "Deploy the Skydive %s" % service,
        "description": [
            "Installs the bundled runtime (through the skydive_common dependency), writes the skydive-%s "
            "unit, starts it, restarts it only when its runtime or its part of the configuration changed, "
            "and waits until it answers." % service,
            "The options below are the ones specific to the %s; every shared option (paths, install "
            "source, service manager, authentication, extra configuration) is documented by skydive_common "
            "and validated by it before any change." % service],
        "author": "skydive.skydive maintainers",
        "options": opts}}}
    return HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)


def common_options():
    with open(os.path.join(ROLES, "skydive_common", "meta", "argument_specs.yml")) as fh:
        return yaml.safe_load(fh)["argument_specs"]["main"]["options"]


def main():
    common = common_options()
    for service in SUBSETS:
        with open(os.path.join(ROLES, "skydive_" + service, "meta", "argument_specs.yml"), "w") as fh:
            fh.write(render(service, common))
    return 0


if __name__ == "__main__":
    sys.exit(main())
