"""RFC 6902 JSON Patch, applied to a deep copy of a JSON document."""

import copy

from ..graph.filters import values_equal


class PatchError(ValueError):
    pass


def _unescape(token):
    return token.replace("~1", "/").replace("~0", "~")


def _split(path):
    if not isinstance(path, str):
        raise PatchError("path must be a string")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("invalid JSON pointer %r" % path)
    return [_unescape(t) for t in path[1:].split("/")]


def _index(container, token, allow_end=False):
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchError("invalid array index %r" % token)
    i = int(token)
    limit = len(container) + (1 if allow_end else 0)
    if i >= limit:
        raise PatchError("array index %d out of range" % i)
    return i


def _parent(doc, tokens, path):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError("path %s does not exist" % path)
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t)]
        else:
            raise PatchError("path %s does not exist" % path)
    return cur


def _get(doc, path):
    tokens = _split(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("path %s does not exist" % path)
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last)]
    raise PatchError("path %s does not exist" % path)


def _add(doc, path, value):
    tokens = _split(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError("path %s does not exist" % path)
    return doc


def _remove(doc, path):
    tokens = _split(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError("path %s does not exist" % path)
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last))
    raise PatchError("path %s does not exist" % path)


def _deep_equal(a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_deep_equal(x, y) for x, y in zip(a, b))
    return values_equal(a, b)


def apply_patch(document, patch):
    """Return a patched deep copy of document. Raises PatchError on any bad operation."""
    if not isinstance(patch, list):
        raise PatchError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(document)
    for op in patch:
        if not isinstance(op, dict):
            raise PatchError("a patch operation must be an object")
        kind = op.get("op")
        path = op.get("path")
        if path is None:
            raise PatchError("operation %r has no path" % (kind,))
        if kind == "add":
            if "value" not in op:
                raise PatchError("add operation has no value")
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc = _remove(doc, path)[0]
        elif kind == "replace":
            if "value" not in op:
                raise PatchError("replace operation has no value")
            _get(doc, path)
            if _split(path):
                doc = _remove(doc, path)[0]
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            src = op.get("from")
            if src is None:
                raise PatchError("%s operation has no from" % kind)
            if kind == "move":
                if isinstance(src, str) and isinstance(path, str) and path.startswith(src + "/"):
                    raise PatchError("cannot move a value into one of its children")
                doc, value = _remove(doc, src)
            else:
                value = copy.deepcopy(_get(doc, src))
            doc = _add(doc, path, value)
        elif kind == "test":
            if "value" not in op:
                raise PatchError("test operation has no value")
            if not _deep_equal(_get(doc, path), op["value"]):
                raise PatchError("test operation failed on %s" % path)
        else:
            raise PatchError("Unexpected kind: %s" % (kind,))
    return doc
