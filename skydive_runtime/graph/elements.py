"""Graph elements: nodes and edges with upstream's exact JSON."""

from ..common.jsonutil import normalize_numbers
from ..common.timeutil import now_ms

MAX_INT = 2 ** 63 - 1   # Revision and times are 64-bit (2^63-1 itself means "never" in the history)


class Element:
    __slots__ = ("ID", "Metadata", "Host", "Origin", "CreatedAt", "UpdatedAt", "DeletedAt", "Revision")

    def __init__(self, id, metadata=None, host="", origin="", created_at=0, updated_at=0,
                 deleted_at=0, revision=1):
        self.ID = id
        self.Metadata = metadata if metadata is not None else {}
        self.Host = host
        self.Origin = origin
        t = now_ms() if not created_at or not updated_at else 0
        self.CreatedAt = created_at or t
        self.UpdatedAt = updated_at or t
        self.DeletedAt = deleted_at or 0
        self.Revision = revision

    def _base_dict(self):
        return {
            "ID": self.ID, "Metadata": self.Metadata, "Host": self.Host, "Origin": self.Origin,
            "CreatedAt": self.CreatedAt, "UpdatedAt": self.UpdatedAt,
            "DeletedAt": self.DeletedAt or None, "Revision": self.Revision,
        }

    @staticmethod
    def _decode_common(d):
        if not isinstance(d, dict):
            raise ValueError("graph element must be a JSON object, got %s" % type(d).__name__)
        eid = d.get("ID")
        if not eid or not isinstance(eid, str):
            raise ValueError("No ID found for graph element")
        md = d.get("Metadata")
        if md is None:
            md = {}
        if not isinstance(md, dict):
            raise ValueError("Metadata of %s must be an object" % eid)
        kw = {"metadata": normalize_numbers(md)}
        for field, arg in (("Host", "host"), ("Origin", "origin")):
            v = d.get(field)
            if v is None:
                v = ""
            if not isinstance(v, str):
                raise ValueError("%s of %s must be a string" % (field, eid))
            kw[arg] = v
        for field, arg in (("CreatedAt", "created_at"), ("UpdatedAt", "updated_at"),
                           ("DeletedAt", "deleted_at"), ("Revision", "revision")):
            v = d.get(field)
            if v is None:
                v = 0
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < MAX_INT:
                raise ValueError("%s of %s must be a non-negative integer below 2^63-1" % (field, eid))
            kw[arg] = v
        return eid, kw

    def copy(self):
        import copy
        c = copy.copy(self)
        c.Metadata = copy.deepcopy(self.Metadata)
        return c


class Node(Element):
    __slots__ = ()
    kind = "node"

    def to_dict(self):
        return self._base_dict()

    @classmethod
    def from_dict(cls, d):
        eid, kw = cls._decode_common(d)
        return cls(eid, **kw)

    def __repr__(self):
        return "Node(%s %s/%s)" % (self.ID, self.Metadata.get("Type"), self.Metadata.get("Name"))


class Edge(Element):
    __slots__ = ("Parent", "Child")
    kind = "edge"

    def __init__(self, id, parent, child, metadata=None, **kw):
        Element.__init__(self, id, metadata, **kw)
        self.Parent = parent
        self.Child = child

    def to_dict(self):
        d = self._base_dict()
        d["Parent"] = self.Parent
        d["Child"] = self.Child
        return d

    @classmethod
    def from_dict(cls, d):
        eid, kw = cls._decode_common(d)
        parent, child = d.get("Parent"), d.get("Child")
        if not isinstance(parent, str) or not parent:
            raise ValueError("parent ID wrong format")
        if not isinstance(child, str) or not child:
            raise ValueError("child ID wrong format")
        return cls(eid, parent, child, **kw)

    def __repr__(self):
        return "Edge(%s %s->%s %s)" % (self.ID, self.Parent, self.Child, self.Metadata.get("RelationType"))
