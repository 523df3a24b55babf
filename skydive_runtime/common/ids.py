"""Identifiers as upstream Skydive makes them."""

import uuid


def gen_id(*parts):
    """UUIDv5 on the OID namespace of the parts joined by '/', or a random UUIDv4 with no parts."""
    if not parts:
        return str(uuid.uuid4())
    return str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(str(p) for p in parts)))


def gen_link_id(parent_id, child_id, relation_type):
    """ID of an edge created by topology.AddLink: UUIDv5(OID, parent+child+relation)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, parent_id + child_id + relation_type))


def new_uuid():
    return str(uuid.uuid4())
