"""The four built-in workflows' resources, as upstream's statics/workflows/*.yaml declare them
(UUID, Name, Title, Abstract, Parameters). Their `Source` is empty: this analyzer runs them
natively (analyzer/workflows.py), not as JavaScript."""

CHECK_CONNECTIVITY = "85757b38-6e21-11e8-b42d-28d2442e1329"
CHECK_MTU = "85757b38-6e21-11e8-b42d-28d2442e1325"
FLOW_MATRIX = "bcc2e200-7a57-11e8-913c-28d2442e1325"
FLOW_VALIDATION = "1c79a9d2-6fcb-4e10-7d40-78819b07781c"


def _param(name, description, ptype, default=None, values=None):
    p = {"Name": name, "Description": description, "Type": ptype, "Default": default}
    if values:
        p["Values"] = [{"Value": v, "Description": d} for v, d in values]
    return p


def _workflow(uuid, name, title, abstract, description, params):
    return {"UUID": uuid, "Name": name, "Title": title, "Abstract": abstract, "Description": description,
            "Parameters": params, "Source": "", "BuiltIn": True}


_NODES = (_param("source", "Source node", "node"), _param("destination", "Destination node", "node"))

BUILTIN_WORKFLOWS = {w["UUID"]: w for w in (
    _workflow(CHECK_CONNECTIVITY, "CheckConnectivity", "Test connectivity between two interfaces",
              "This workflow aims to test the connectivity between two interfaces. It returns the status of "
              "the connection, true or false.",
              "Captures on every node of the shortest path from the source to the destination, injects 5 ICMP "
              "echo requests from the source to the destination, and returns {Connectivity: true} when a flow "
              "of that capture carries packets both ways, with the capture's flows.", list(_NODES)),
    _workflow(CHECK_MTU, "CheckMTU", "Check MTU on a path between two interfaces",
              "This workflow aims to check the MTU on a path between two interfaces. It returns the status of "
              "MTU, true or false.",
              "Follows the shortest path from the source to the destination and returns false when a node's "
              "MTU is lower than the MTU of the node before it (or when there is no path), true otherwise.",
              list(_NODES)),
    _workflow(FLOW_MATRIX, "FlowMatrix", "Create a Flow Matrix of the running processes",
              "This workflow aims to create a Flow Matrix of the running processes. Flow Matrix will report "
              "all opened Sockets between client and server processes across hosts.",
              "Pairs the sockets the hosts' Sockets metadata lists (clients connected to a listening port) "
              "into a matrix, returned as a graph ({nodes, edges}) or as Graphviz text.",
              [_param("useFlows", "Also use flows to build matrix", "boolean"),
               _param("format", "Flow matrix output format", "choice", "graph",
                      (("graph", "Add nodes and edges to the current topology"), ("dot", "Graphviz output"))),
               _param("debug", "Show debug logs in the JavaScript console", "boolean")]),
    _workflow(FLOW_VALIDATION, "FlowValidation", "Check Flow-Forwarding form Checkpoint-1 to Checkpoint-2",
              "This workflow aims to validate the Flow-Forwarding on particular checkpoints. It returns the "
              "status of flow validation, true or false.",
              "Captures on the checkpoints (or on every layer2 node between them) with a BPF filter built from "
              "the protocol, addresses and port/ICMP id, waits Time seconds, and returns {Connectivity: true} "
              "when every captured node saw the traffic (both ways but for UDP), else the nodes that did not "
              "(NotReachedNodes, NotCapturedNodes).",
              [_param("Checkpoint-1", "Select Checkpoint-1", "node"),
               _param("Checkpoint-2", "Select Checkpoint-2 (Optional)", "node"),
               _param("All", "Create Capture on all nodes between Checkpoint-1 and Checkpoint-2 (Select Only "
                      "with Checkpoint-2)", "boolean"),
               _param("Protocol", "Select Protocol", "choice", "icmp",
                      (("icmp", "ICMP"), ("tcp", "TCP"), ("udp", "UDP"))),
               _param("Source-IP", "Enter Source IP (Optional)", "string"),
               _param("Destination-IP", "Enter Destination IP (Optional)", "string"),
               _param("ID/Port", "Enter Destination Port/ICMP-ID (Optional)", "string"),
               _param("Time", "Time Duration to capture the flows in seconds", "integer", 5)]),
)}
