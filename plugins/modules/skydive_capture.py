#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_capture
short_description: Manage Skydive flow captures
version_added: 1.0.0
description:
  - Start or stop a flow capture on the topology nodes selected by a Gremlin query
    (C(/api/capture)).
  - A capture is identified by its Gremlin query and its name. The analyzer cannot update a
    capture, so when an option changes the capture is replaced (deleted, then created again).
  - Optionally waits until the capture is active on every capturable node the query selects.
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.resource
attributes:
  diff_mode:
    description: Shows the capture before and after.
options:
  query:
    description:
      - Gremlin query selecting the nodes to capture on, for example
        C(G.V().Has('Name', 'br-int', 'Type', 'ovsbridge')).
      - One of O(query) or O(interface_name) and O(type) is required; O(query) wins.
    type: str
  interface_name:
    description:
      - Name of the interface to capture on, used with O(type) to build the query
        C(G.V().Has('Name', '<interface_name>', 'Type', '<type>')).
    type: str
  type:
    description:
      - Topology type of O(interface_name) (C(device), C(veth), C(ovsbridge)...). This is the
        node type, not the capture type (see O(capture_type)).
    type: str
  capture_name:
    description:
      - Name of the capture. Part of its identity with the query.
    type: str
    default: ''
    aliases: [name]
  description:
    description:
      - Description of the capture.
    type: str
    default: ''
  capture_type:
    description:
      - Capture probe. When not set the agent picks the default for each node type
        (C(afpacket) for interfaces, C(ovssflow) for OVS bridges, C(ovsmirror) for OVS ports).
      - The analyzer refuses (HTTP 400) a type that no node the query selects can run (node type,
        or the agent of its host cannot run it, see the host node's C(CaptureTypes)).
    type: str
    choices: [afpacket, pcap, pcapsocket, sflow, ovssflow, ebpf, ovsmirror, ovsnetflow]
  bpf_filter:
    description:
      - BPF filter applied by the probe, for example C(tcp port 80). Empty captures all.
      - Not with O(capture_type=ebpf).
    type: str
    default: ''
  extra_tcp_metric:
    description:
      - Compute extra TCP metrics (RTT, SYN/FIN/RST times...).
    type: bool
    default: false
  ip_defrag:
    description:
      - Defragment IPv4 packets, each datagram accounted once to its flow with the bytes of all
        its fragments, and C(IPMetric) (C(Fragments), C(FragmentErrors)) in the IPv4 flows. Not with
        C(capture_type=ebpf) (HTTP 400); an untyped capture asking for it runs afpacket.
    type: bool
    default: false
  reassemble_tcp:
    description:
      - Reassemble TCP streams. Not implemented (no extra layer needs it), the analyzer refuses
        C(true) (HTTP 400).
    type: bool
    default: false
  layer_key_mode:
    description:
      - Which layers make the flow key, C(L2) (Ethernet and up) or C(L3) (IP and up).
    type: str
    default: L2
    choices: [L2, L3]
  extra_layers:
    description:
      - Application layers decoded into the capture's flows, as upstream's C(DNS) (questions,
        answers, response code), C(DHCPv4) (with the message type, client MAC and offered address)
        and C(VRRPv2) (router ID, priority) flow fields. Every type feeding whole packets or sampled
        headers to the decoder takes it (afpacket, pcap, pcapsocket, sflow, ovssflow, ovsmirror); an
        untyped capture asking for it runs afpacket rather than ebpf, which refuses it (HTTP 400).
    type: list
    elements: str
    choices: [VRRP, DNS, DHCPv4]
    default: []
  port:
    description:
      - Port of the C(pcapsocket), C(sflow) or C(ovssflow) listener on the agent; 0 picks one in
        the agent's range. Refused for the other types.
    type: int
    default: 0
  raw_packet_limit:
    description:
      - Number of raw packets kept per flow (0 to 10). Not with O(capture_type=ebpf).
    type: int
    default: 0
  header_size:
    description:
      - Bytes of each packet handed to the flow table; 0 keeps the probe default, otherwise 14
        to 4096. Not with O(capture_type=ebpf).
    type: int
    default: 0
  sampling_rate:
    description:
      - Sampling rate that C(ovssflow) configures on the OVS bridge (1 = every packet).
      - Other capture types refuse a value other than 1; a capture without O(capture_type) passes
        it to the C(ovssflow) default of OVS bridges.
    type: int
    default: 1
  polling_interval:
    description:
      - Counter polling interval that C(ovssflow) configures, in seconds.
      - Other capture types refuse a value other than 10, as for O(sampling_rate).
    type: int
    default: 10
  target:
    description:
      - With O(target_type=netflowv5), C(ip:port) (IPv4) of a NetFlow v5 collector the agents also
        export the capture's flows to (two records per flow and C(flow.update) tick, one per direction).
      - With O(target_type=erspanv1), the IPv4 address (C(ip:port) is taken, the port unused) the agents
        mirror every captured frame to, as ERSPAN type II over GRE (session 1, index = the interface's IfIndex).
    type: str
    default: ''
  target_type:
    description:
      - Export format for O(target); C(netflowv5) when not set. C(erspanv1) mirrors the packets, so only
        capture types that see them take it (not C(ebpf) or C(ovsnetflow), HTTP 400); an unset O(capture_type)
        then runs afpacket on interfaces.
    type: str
    choices: [netflowv5, erspanv1]
  state:
    description:
      - V(present) makes the capture exist with these options, V(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
  wait:
    description:
      - With O(state=present), wait until the capture is active on every node the query
        selects that can be captured (it has a C(Host) and a capturable C(Type)).
      - The analyzer lists the nodes where the capture failed in the capture's C(Errors).
      - Fails when a node reports the capture in error, or at O(wait_timeout).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: int
    default: 60
seealso:
  - module: skydive.skydive.skydive_query
  - module: skydive.skydive.skydive_injection
"""

EXAMPLES = r"""
- name: Capture on br-int of every compute while the test runs
  skydive.skydive.skydive_capture:
    analyzer: analyzer.example.com:8082
    query: "G.V().Has('Name', 'br-int', 'Type', 'ovsbridge')"
    capture_name: test-br-int
    bpf_filter: icmp
    wait: true
  register: capture

- name: Capture on eth0 (upstream style selector and provider dict)
  skydive.skydive.skydive_capture:
    interface_name: eth0
    type: device
    capture_name: eth0
    layer_key_mode: L3
    extra_tcp_metric: true
    provider:
      endpoint: analyzer.example.com:8082
      username: admin
      password: "{{ skydive_password }}"

- name: Stop the capture
  skydive.skydive.skydive_capture:
    query: "G.V().Has('Name', 'br-int', 'Type', 'ovsbridge')"
    capture_name: test-br-int
    state: absent
"""

RETURN = r"""
capture:
  description: The capture as the analyzer stores it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    UUID: 5d4a0c5b-0f3e-4d1b-7c2e-9c5b0b1a8f00
    GremlinQuery: "G.V().Has('Name', 'br-int', 'Type', 'ovsbridge')"
    Name: test-br-int
    BPFFilter: icmp
    LayerKeyMode: L2
    SamplingRate: 1
    PollingInterval: 10
    Count: 2
id:
  description: UUID of the capture (null in check mode before creation or after deletion).
  returned: always
  type: str
  sample: 5d4a0c5b-0f3e-4d1b-7c2e-9c5b0b1a8f00
nodes:
  description: With O(wait), the capturable nodes and the state of the capture on each.
  returned: when O(wait=true) and O(state=present) outside check mode
  type: list
  elements: dict
  sample:
    - id: 8e3d2f4c-6f0e-5b1a-9e8d-3b1f2c4d5e6f
      name: br-int
      host: compute-0
      state: active
      packets_received: 42
drift:
  description: Options of the existing capture that differ from the task (it was replaced).
  returned: when an existing capture differs
  type: list
  elements: str
  sample: [BPFFilter]
replaced:
  description: UUIDs of the captures deleted to be replaced.
  returned: when a capture was replaced
  type: list
  elements: str
deleted:
  description: UUIDs of the captures deleted with O(state=absent).
  returned: when O(state=absent) deleted something
  type: list
  elements: str
"""

import time

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    CAPTURABLE_TYPES,
    CAPTURE_TYPES,
    EXTRA_LAYERS,
    SkydiveError,
    gremlin_quote,
)
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule


class CaptureModule(SkydiveModule):
    volatile_fields = ("UUID", "Count")
    argument_spec = dict(
        query=dict(type="str"),
        interface_name=dict(type="str"),
        type=dict(type="str"),
        capture_name=dict(type="str", default="", aliases=["name"]),
        description=dict(type="str", default=""),
        capture_type=dict(type="str", choices=list(CAPTURE_TYPES)),
        bpf_filter=dict(type="str", default=""),
        extra_tcp_metric=dict(type="bool", default=False),
        ip_defrag=dict(type="bool", default=False),
        reassemble_tcp=dict(type="bool", default=False),
        layer_key_mode=dict(type="str", default="L2", choices=["L2", "L3"], no_log=False),
        extra_layers=dict(type="list", elements="str", default=[], choices=list(EXTRA_LAYERS)),
        port=dict(type="int", default=0),
        raw_packet_limit=dict(type="int", default=0),
        header_size=dict(type="int", default=0),
        sampling_rate=dict(type="int", default=1),
        polling_interval=dict(type="int", default=10),
        target=dict(type="str", default=""),
        target_type=dict(type="str", choices=["netflowv5", "erspanv1"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=60),
    )
    module_kwargs = dict(
        required_one_of=[["query", "interface_name"]],
        required_together=[["interface_name", "type"]],
    )

    def gremlin(self):
        p = self.params
        if p["query"]:
            if p["interface_name"]:
                self.module.warn("query is set: interface_name and type are ignored")
            return p["query"].strip()
        return "G.V().Has('Name', %s, 'Type', %s)" % (
            gremlin_quote(p["interface_name"]), gremlin_quote(p["type"]))

    def desired(self, query):
        p = self.params
        if not 0 <= p["raw_packet_limit"] <= 10:
            raise SkydiveError("raw_packet_limit must be between 0 and 10, got %d" % p["raw_packet_limit"])
        if p["header_size"] and not 14 <= p["header_size"] <= 4096:
            raise SkydiveError("header_size must be 0 or between 14 and 4096, got %d" % p["header_size"])
        for key in ("sampling_rate", "polling_interval", "port"):
            if p[key] < 0:
                raise SkydiveError("%s must not be negative, got %d" % (key, p[key]))
        body = {
            "GremlinQuery": query,
            "Name": p["capture_name"],
            "Description": p["description"],
            "BPFFilter": p["bpf_filter"],
            "ExtraTCPMetric": p["extra_tcp_metric"],
            "IPDefrag": p["ip_defrag"],
            "ReassembleTCP": p["reassemble_tcp"],
            "LayerKeyMode": p["layer_key_mode"],
            "ExtraLayers": sum(EXTRA_LAYERS[x] for x in set(p["extra_layers"])),
            "Port": p["port"],
            "RawPacketLimit": p["raw_packet_limit"],
            "HeaderSize": p["header_size"],
            "SamplingRate": p["sampling_rate"],
            "PollingInterval": p["polling_interval"],
            "Target": p["target"],
        }
        if p["capture_type"]:
            body["Type"] = p["capture_type"]
        if p["target_type"]:
            body["TargetType"] = p["target_type"]
        return body

    def execute(self):
        p = self.params
        query = self.gremlin()
        desired = self.desired(query)

        def is_same(res):
            return (res.get("GremlinQuery") or "").strip() == query and \
                (res.get("Name") or "") == p["capture_name"]

        label = "capture %r on %s" % (p["capture_name"], query) if p["capture_name"] else \
            "capture on %s" % query
        capture = self.ensure_resource("capture", desired, is_same, p["state"], label)
        self.result["capture"] = capture or {}
        self.result["id"] = (capture or {}).get("UUID")
        if p["state"] == "present" and p["wait"] and not self.check_mode:
            self.result["nodes"] = self.wait_active(capture, label)
            fresh = self.client.get("capture", capture["UUID"])
            if fresh:
                self.result["capture"] = fresh

    def wait_active(self, capture, label):
        uuid = capture["UUID"]
        deadline = time.time() + self.params["wait_timeout"]
        while True:
            nodes = self.client.query_nodes(capture["GremlinQuery"])
            capturable = [n for n in nodes if n.get("Host") and
                          (n.get("Metadata") or {}).get("Type") in CAPTURABLE_TYPES]
            report, pending = [], []
            for node in capturable:
                meta = node.get("Metadata") or {}
                entry = {}
                for cap in meta.get("Captures") or []:
                    if isinstance(cap, dict) and cap.get("ID") == uuid:
                        entry = cap
                item = dict(id=node.get("ID"), name=meta.get("Name"), host=node.get("Host"),
                            state=entry.get("State", "pending"),
                            packets_received=entry.get("PacketsReceived", 0))
                if entry.get("Error"):
                    item["error"] = entry["Error"]
                report.append(item)
                if entry.get("State") == "error":
                    raise SkydiveError("%s failed on node %s of host %s: %s" % (
                        label, item["name"], item["host"], entry.get("Error") or "unknown error"))
                if entry.get("State") != "active":
                    pending.append(item)
            if capturable and not pending:
                return report
            if time.time() >= deadline:
                if not capturable:
                    raise SkydiveError(
                        "%s: after %d s the query selects no node that can be captured (%d node(s) "
                        "selected; a capturable node has a Host, i.e. an agent, and a Type such as "
                        "device, veth or ovsbridge)" % (label, self.params["wait_timeout"], len(nodes)))
                raise SkydiveError("%s is not active after %d s on: %s" % (
                    label, self.params["wait_timeout"], ", ".join(
                        "%s@%s (%s)" % (i["name"], i["host"], i["state"]) for i in pending)))
            time.sleep(1)


def main():
    CaptureModule().run()


if __name__ == "__main__":
    main()
