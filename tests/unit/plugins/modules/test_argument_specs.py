"""Argument handling of the modules, through ansible's own module-args test helper: the checks
that fail before any request is sent (so no analyzer is needed). An unreachable address is
used where a module gets as far as connecting, to prove it did."""

import json

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.skydive.skydive.plugins.modules import (
    skydive_alert,
    skydive_capture,
    skydive_edge,
    skydive_edge_rule,
    skydive_injection,
    skydive_node,
    skydive_node_rule,
    skydive_query,
)

DEAD = "127.0.0.1:1"


def run(module, args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exc:
            module.main()
    result = json.loads(capsys.readouterr().out)
    return exc.value.code, result


@pytest.mark.parametrize("module, args, message", [
    (skydive_capture, {"capture_name": "c"}, "one of the following is required: query, interface_name"),
    (skydive_capture, {"interface_name": "eth0"}, "parameters are required together: interface_name, type"),
    (skydive_capture, {"query": "G.V()", "layer_key_mode": "L4"}, "value of layer_key_mode must be one of"),
    (skydive_capture, {"query": "G.V()", "raw_packet_limit": 11}, "raw_packet_limit must be between 0 and 10"),
    (skydive_injection, {"dst": "G.V()"}, "state is present but all of the following are missing: src"),
    (skydive_injection, {"src": "G.V()", "type": "arp"}, "value of type must be one of"),
    (skydive_injection, {"src": "G.V()", "src_port": 70000}, "src_port must be between 0 and 65535"),
    (skydive_node, {"name": "a"}, "missing required arguments: node_type"),
    (skydive_node, {"name": "a", "node_type": "b", "state": "gone"}, "value of state must be one of"),
    (skydive_edge, {"parent_node": "a", "child_node": "b"}, "missing required arguments: relation_type"),
    (skydive_alert, {"name": "a"}, "state is present but all of the following are missing: expression"),
    (skydive_alert, {"name": "a", "expression": "G.V()", "trigger": "never"}, "trigger 'never'"),
    (skydive_node_rule, {"name": "r", "action": "update", "metadata": {"A": 1}}, "action=update needs query"),
    (skydive_node_rule, {"name": "r", "node_type": "fabric"}, "needs the node's Name"),
    (skydive_edge_rule, {"name": "r", "src": "G.V()"}, "missing: dst, relation_type"),
    (skydive_query, {}, "missing required arguments: query"),
    (skydive_query, {"query": "G.V()", "provider": {"endpoint": DEAD, "port": 1}},
     "Unsupported parameters for (basic.py) module: provider.port"),
])
def test_bad_arguments(module, args, message, capsys):
    args = dict({"analyzer": DEAD}, **args)
    code, result = run(module, args, capsys)
    assert code == 1 and result["failed"]
    assert message in result["msg"], result["msg"]
    assert "cannot reach" not in result["msg"]  # failed before any request


def test_provider_is_optional_and_password_hidden(capsys):
    code, result = run(skydive_query, {"query": "G.V()", "analyzer": DEAD, "password": "s3cret",
                                       "provider": {"password": "s3cret2"}}, capsys)
    assert code == 1 and "cannot reach the Skydive analyzer at %s" % DEAD in result["msg"]
    assert "s3cret" not in json.dumps(result)


def test_provider_endpoint_alias(capsys):
    code, result = run(skydive_query, {"query": "G.V()", "provider": {"analyzer": DEAD}}, capsys)
    assert code == 1 and "at %s" % DEAD in result["msg"]
