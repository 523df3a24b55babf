"""Node and edge schema checks (upstream statics/schemas/{node,edge}.schema)."""


class SchemaError(ValueError):
    pass


def _non_empty_str(md, key):
    v = md.get(key)
    return isinstance(v, str) and v != ""


def validate_node(node):
    md = node.Metadata
    missing = [k for k in ("Type", "Name") if not _non_empty_str(md, k)]
    t = md.get("Type")
    if t == "netns" and not _non_empty_str(md, "Path"):
        missing.append("Path")
    if t == "ovsport" and not _non_empty_str(md, "UUID"):
        missing.append("UUID")
    if missing:
        raise SchemaError("invalid schema: Metadata: %s" % ", ".join(
            "%s is required (non-empty string)" % k for k in missing))


def validate_edge(edge):
    if not edge.Parent or not edge.Child:
        raise SchemaError("invalid schema: Parent and Child are required")
    if not _non_empty_str(edge.Metadata, "RelationType"):
        raise SchemaError("invalid schema: Metadata: RelationType is required (non-empty string)")


def validate(element):
    if element.kind == "edge":
        validate_edge(element)
    else:
        validate_node(element)
