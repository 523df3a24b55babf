#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2024, skydive.skydive contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: skydive_injection
short_description: Inject packets into the Skydive topology
version_added: 1.0.0
description:
  - Create or delete a packet injection (C(/api/injectpacket)) that makes the agents forge and
    send packets from the interfaces selected by O(src) to O(dst).
  - An injection is identified by O(src), O(dst) and O(type). The analyzer cannot update an
    injection, so when another option changes the injection is replaced (deleted, then created
    again, which sends the packets again).
  - Optionally waits until the agents have sent the packets.
  - With O(ping_mesh=true) it runs a ping-mesh instead (C(POST /api/pingmesh)), ICMP echo from
    every node of O(src) to every node of O(dst), answered as the RTT matrix in RV(ping_mesh).
author:
  - Skydive Ansible maintainers (@skydive-project)
extends_documentation_fragment:
  - skydive.skydive.skydive
  - skydive.skydive.attributes
  - skydive.skydive.attributes.resource
attributes:
  diff_mode:
    description: Shows the injection before and after.
options:
  src:
    description:
      - Gremlin query selecting the interface(s) to send from, for example
        C(G.V().Has('Name', 'eth0', 'Type', 'veth')). Required with O(state=present).
    type: str
  ping_mesh:
    description:
      - Ping from every node of O(src) to every node of O(dst) (O(type) C(icmp4) or C(icmp6),
        O(count) echo requests 1 to 100, O(interval) ms 10 to 10000 apart) and return the RTT
        matrix; nothing is left on the analyzer afterwards, so the task never reports a change.
      - The analyzer answers once every reply is in, at most O(count) x O(interval) plus two
        C(flow.update) periods later; O(timeout) is raised to cover that.
      - Not run in check mode.
    type: bool
    default: false
  dst:
    description:
      - Gremlin query selecting the destination interface; its first IP and MAC are used
        unless O(dst_ip) and O(dst_mac) are given.
    type: str
    default: ''
  type:
    description:
      - Kind of packets.
    type: str
    default: icmp4
    choices: [icmp4, icmp6, tcp4, tcp6, udp4, udp6]
  count:
    description:
      - Number of packets to send.
    type: int
    default: 1
  interval:
    description:
      - Milliseconds between two packets.
    type: int
    default: 1000
  payload:
    description:
      - Payload of each packet; empty sends 56 random letters.
    type: str
    default: ''
  increment:
    description:
      - Bytes added to the payload of each next packet (C(IncrementPayload)).
    type: int
    default: 0
  ttl:
    description:
      - IP time to live of the packets.
    type: int
    default: 64
  src_ip:
    description:
      - Source IP (or CIDR) instead of the source interface's address.
    type: str
    default: ''
  dst_ip:
    description:
      - Destination IP (or CIDR) instead of the address of O(dst).
    type: str
    default: ''
  src_mac:
    description:
      - Source MAC instead of the source interface's.
    type: str
    default: ''
  dst_mac:
    description:
      - Destination MAC instead of the one resolved from O(dst) or the routing tables.
    type: str
    default: ''
  src_port:
    description:
      - Source port (TCP/UDP); 0 picks a random one.
    type: int
    default: 0
  dst_port:
    description:
      - Destination port (TCP/UDP).
    type: int
    default: 0
  icmp_id:
    description:
      - ICMP identifier; 0 lets the analyzer number the source nodes from 1.
    type: int
    default: 0
  mode:
    description:
      - V(unique) gives each source node its own ICMP id or source port, V(random) draws a new
        one for every packet.
    type: str
    default: unique
    choices: [unique, random]
  pcap:
    description:
      - Path, on the host running the module, of a pcap file whose packets are replayed instead
        of forging them.
    type: path
  resource_ttl:
    description:
      - Lifetime of the injection resource on the analyzer (a Go duration such as C(30s) or
        C(5m)); the analyzer deletes it afterwards. Empty keeps it until O(state=absent).
    type: str
    default: ''
  state:
    description:
      - V(present) makes the injection exist with these options, V(absent) deletes it.
    type: str
    default: present
    choices: [present, absent]
  wait:
    description:
      - With O(state=present), wait until the agents have finished sending (no node carries
        the injection any more, after at least O(count) x O(interval) ms).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: int
    default: 60
seealso:
  - module: skydive.skydive.skydive_capture
"""

EXAMPLES = r"""
- name: Ping from vm1 to vm2 five times and wait until the packets are sent
  skydive.skydive.skydive_injection:
    src: "G.V().Has('Name', 'vm1-eth0', 'Type', 'veth')"
    dst: "G.V().Has('Name', 'vm2-eth0', 'Type', 'veth')"
    type: icmp4
    count: 5
    interval: 200
    wait: true

- name: Some TCP SYNs towards a fixed address
  skydive.skydive.skydive_injection:
    src: "G.V().Has('Name', 'eth0', 'Type', 'device')"
    dst_ip: 192.0.2.10
    dst_mac: "52:54:00:12:34:56"
    type: tcp4
    dst_port: 443
    count: 3
    resource_ttl: 1m

- name: Remove the injection
  skydive.skydive.skydive_injection:
    src: "G.V().Has('Name', 'vm1-eth0', 'Type', 'veth')"
    dst: "G.V().Has('Name', 'vm2-eth0', 'Type', 'veth')"
    type: icmp4
    state: absent
"""

RETURN = r"""
injection:
  description: The injection as the analyzer stores it (empty after O(state=absent)).
  returned: always
  type: dict
  sample:
    UUID: 2f1f9a3e-6a39-4f4a-5f1e-0c2b7c0e8e11
    Src: "G.V().Has('Name', 'vm1-eth0', 'Type', 'veth')"
    Dst: "G.V().Has('Name', 'vm2-eth0', 'Type', 'veth')"
    Type: icmp4
    Count: 5
    Interval: 200
    TTL: 64
id:
  description: UUID of the injection (null in check mode before creation or after deletion).
  returned: always
  type: str
  sample: 2f1f9a3e-6a39-4f4a-5f1e-0c2b7c0e8e11
ping_mesh:
  description:
    - With O(ping_mesh=true), the analyzer's answer, C(Nodes) (ID to C(Name), C(Host), C(IP)),
      C(Src), C(Dst) (node IDs), C(Matrix) (source ID to destination ID to C(Sent), C(Received),
      C(Loss) in percent and C(RTT) C(Min)/C(Avg)/C(Max) in ms, or C(Error); null on the diagonal).
  returned: when O(ping_mesh=true) outside check mode
  type: dict
  sample:
    Count: 3
    Matrix: {"n1": {"n1": null, "n2": {"Sent": 3, "Received": 3, "Loss": 0.0, "RTT": {"Min": 0.1, "Avg": 0.2, "Max": 0.3}}}}
packets_sent:
  description: With O(wait), the highest packet count the source nodes reported.
  returned: when O(wait=true) and O(state=present) outside check mode
  type: int
  sample: 5
drift:
  description: Options of the existing injection that differ from the task (it was replaced).
  returned: when an existing injection differs
  type: list
  elements: str
replaced:
  description: UUIDs of the injections deleted to be replaced.
  returned: when an injection was replaced
  type: list
  elements: str
deleted:
  description: UUIDs of the injections deleted with O(state=absent).
  returned: when O(state=absent) deleted something
  type: list
  elements: str
"""

import time

from ansible_collections.skydive.skydive.plugins.module_utils.skydive_api import (
    INJECTION_TYPES,
    SkydiveError,
    read_file_b64,
)
from ansible_collections.skydive.skydive.plugins.module_utils.skydive_module import SkydiveModule


class InjectionModule(SkydiveModule):
    volatile_fields = ("UUID", "StartTime")
    argument_spec = dict(
        src=dict(type="str"),
        dst=dict(type="str", default=""),
        type=dict(type="str", default="icmp4", choices=list(INJECTION_TYPES)),
        count=dict(type="int", default=1),
        interval=dict(type="int", default=1000),
        payload=dict(type="str", default=""),
        increment=dict(type="int", default=0),
        ttl=dict(type="int", default=64),
        src_ip=dict(type="str", default=""),
        dst_ip=dict(type="str", default=""),
        src_mac=dict(type="str", default=""),
        dst_mac=dict(type="str", default=""),
        src_port=dict(type="int", default=0),
        dst_port=dict(type="int", default=0),
        icmp_id=dict(type="int", default=0),
        mode=dict(type="str", default="unique", choices=["unique", "random"]),
        pcap=dict(type="path"),
        resource_ttl=dict(type="str", default=""),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=60),
        ping_mesh=dict(type="bool", default=False),
    )
    module_kwargs = dict(required_if=[["state", "present", ["src"]]])

    def desired(self):
        p = self.params
        checks = (("count", 0, 2 ** 63), ("interval", 0, 2 ** 63), ("ttl", 1, 255),
                  ("src_port", 0, 65535), ("dst_port", 0, 65535), ("icmp_id", 0, 65535),
                  ("increment", 0, 2 ** 31))
        for key, low, high in checks:
            if not low <= p[key] <= high:
                raise SkydiveError("%s must be between %d and %d, got %d" % (key, low, high, p[key]))
        body = {
            "Src": (p["src"] or "").strip(),
            "Dst": p["dst"].strip(),
            "Type": p["type"],
            "Count": p["count"],
            "Interval": p["interval"],
            "Payload": p["payload"],
            "IncrementPayload": p["increment"],
            "TTL": p["ttl"],
            "SrcIP": p["src_ip"],
            "DstIP": p["dst_ip"],
            "SrcMAC": p["src_mac"],
            "DstMAC": p["dst_mac"],
            "SrcPort": p["src_port"],
            "DstPort": p["dst_port"],
            "ICMPID": p["icmp_id"],
            "Mode": p["mode"],
        }
        if p["pcap"]:
            body["Pcap"] = read_file_b64(p["pcap"])
        return body

    def ping_mesh(self):
        p = self.params
        if p["state"] != "present" or not (p["src"] or "").strip() or not p["dst"].strip():
            raise SkydiveError("ping_mesh needs state=present, src and dst (Gremlin queries)")
        if p["type"] not in ("icmp4", "icmp6"):
            raise SkydiveError("ping_mesh pings: type must be icmp4 or icmp6, got %s" % p["type"])
        self.result["changed"] = False
        if self.check_mode:
            self.result["skipped"] = True
            return
        self.client.timeout = max(self.client.timeout, p["count"] * p["interval"] / 1000.0 + 300)
        body = {"Src": p["src"].strip(), "Dst": p["dst"].strip(), "Type": p["type"], "Count": p["count"],
                "Interval": p["interval"]}
        self.result["ping_mesh"] = self.client.request("POST", "/api/pingmesh", data=body, what="the ping-mesh")[1]

    def execute(self):
        p = self.params
        if p["ping_mesh"]:
            return self.ping_mesh()
        src = (p["src"] or "").strip()
        dst = p["dst"].strip()

        def is_same(res):
            # With state=absent src may be omitted: then dst and type select.
            if src and (res.get("Src") or "").strip() != src:
                return False
            return (res.get("Dst") or "").strip() == dst and (res.get("Type") or "icmp4") == p["type"]

        desired = self.desired() if p["state"] == "present" else {}
        label = "%s injection from %s%s" % (
            p["type"], src or "(any source)", (" to " + dst) if dst else "")
        injection = self.ensure_resource("injectpacket", desired, is_same, p["state"], label,
                                         ttl=p["resource_ttl"] or None)
        self.result["injection"] = injection or {}
        self.result["id"] = (injection or {}).get("UUID")
        if p["state"] == "present" and p["wait"] and not self.check_mode:
            self.result["packets_sent"] = self.wait_sent(injection, label)

    def wait_sent(self, injection, label):
        """Poll the nodes carrying the injection until none does any more.

        Returns the highest ``PacketCount`` the nodes reported. An injection that never shows on
        a node (it ended between two polls, or no agent ran it) gives a warning.
        """
        uuid = injection["UUID"]
        p = self.params
        started = time.time()
        minimum = (p["count"] * p["interval"]) / 1000.0
        deadline = started + p["wait_timeout"]
        sent, seen = 0, False
        query = "G.V().Has('PacketInjections.ID', '%s')" % uuid
        while True:
            nodes = self.client.query_nodes(query)
            for node in nodes:
                for entry in (node.get("Metadata") or {}).get("PacketInjections") or []:
                    if isinstance(entry, dict) and entry.get("ID") == uuid:
                        seen = True
                        if entry.get("State") == "error":
                            raise SkydiveError("%s failed on node %s: %s" % (
                                label, (node.get("Metadata") or {}).get("Name"),
                                entry.get("Error") or "unknown error"))
                        sent = max(sent, int(entry.get("PacketCount") or 0))
            if not nodes and (seen or time.time() - started >= minimum):
                if not seen:
                    self.module.warn("%s never showed on a topology node while waiting: it "
                                     "ended before the first poll or no agent ran it" % label)
                return sent
            if time.time() >= deadline:
                raise SkydiveError("%s still running on %s after %d s" % (
                    label, ", ".join(str((n.get("Metadata") or {}).get("Name")) for n in nodes),
                    p["wait_timeout"]))
            time.sleep(0.5)


def main():
    InjectionModule().run()


if __name__ == "__main__":
    main()
