"""The resource kinds the analyzer serves, one line each.

This list drives the REST routes (/api/<name>, api/resources.py ResourceHandler), which kinds are
read back from the store at start (backend "stored"), the analyzer's own creations (startup
capture) and `skydive client <command> create` (each kind's flags). A new kind is a new file with
its ResourceKind subclass plus its line here.
"""

from ..api.kinds import AlertKind, EdgeRuleKind, NodeRuleKind, WorkflowKind
from ..api.resources import EdgeKind, NodeKind
from .captures import AnalyzerCaptureKind
from .injections import InjectionKind

KINDS = (
    AnalyzerCaptureKind,    # capture, with the checks against the agents' capture types
    InjectionKind,      # injectpacket, with the per-node resolution of analyzer/injections.py
    AlertKind,
    NodeRuleKind,
    EdgeRuleKind,
    WorkflowKind,
    NodeKind,
    EdgeKind,
)
