"""Access to element fields by the keys Gremlin filters use.

Keys are dotted metadata paths (`Ovs.OtherConfig.x`), optionally prefixed `Metadata.`, or the
special getters `@ID`, `@Host`, `@Origin`, `@CreatedAt`, `@UpdatedAt`, `@DeletedAt`,
`@Revision` (and `Parent`/`Child` on edges). A list met on the way fans out: the key then
has several values and a predicate matches when any of them does.
"""

MISSING = object()

SPECIAL_GETTERS = {
    "@ID": "ID", "@Host": "Host", "@Origin": "Origin", "@CreatedAt": "CreatedAt",
    "@UpdatedAt": "UpdatedAt", "@DeletedAt": "DeletedAt", "@Revision": "Revision",
}


def _walk(value, parts, i, out):
    if i == len(parts):
        out.append(value)
        return
    if isinstance(value, dict):
        # a literal dotted key ("ExtID.iface-id" stored flat) wins over nesting
        for j in range(len(parts), i, -1):
            k = ".".join(parts[i:j])
            if k in value:
                _walk(value[k], parts, j, out)
                return
        return
    if isinstance(value, list):
        for item in value:
            _walk(item, parts, i, out)


def get_raw(element, key):
    """The value stored under key (lists kept whole); MISSING when absent.

    When a list is crossed half way (`Captures.ID`), the result is the list of the values found.
    """
    attr = SPECIAL_GETTERS.get(key)
    if attr is not None:
        v = getattr(element, attr)
        if attr == "DeletedAt" and v is None:
            return 0
        return v
    if key in ("Parent", "Child") and hasattr(element, "Parent"):
        return getattr(element, key)
    md = element.Metadata
    if key.startswith("Metadata."):
        key = key[9:]
    if key in md:
        return md[key]
    if "." not in key:
        return MISSING
    out = []
    _walk(md, key.split("."), 0, out)
    if not out:
        return MISSING
    if len(out) == 1:
        return out[0]
    return out


def get_values(element, key):
    """Flattened list of the scalar (or map) values under key, for predicate matching."""
    v = get_raw(element, key)
    if v is MISSING:
        return None
    if isinstance(v, list):
        flat = []
        for item in v:
            if isinstance(item, list):
                flat.extend(item)
            else:
                flat.append(item)
        return flat
    return [v]


def get_in(md, key, default=MISSING):
    """Nested lookup of a dotted key in a metadata dict (no fan-out)."""
    if key in md:
        return md[key]
    cur = md
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def set_in(md, key, value):
    """Set a dotted key, creating intermediate maps. Returns True when something changed."""
    parts = key.split(".")
    cur = md
    for part in parts[:-1]:
        nxt = cur.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[part] = nxt
        cur = nxt
    last = parts[-1]
    if last in cur and cur[last] == value and type(cur[last]) is type(value):
        return False
    cur[last] = value
    return True


def del_in(md, key):
    """Delete a dotted key. Returns True when it existed."""
    if key in md:
        del md[key]
        return True
    parts = key.split(".")
    cur = md
    for part in parts[:-1]:
        cur = cur.get(part)
        if not isinstance(cur, dict):
            return False
    if parts[-1] in cur:
        del cur[parts[-1]]
        return True
    return False


def flatten_keys(md, prefix=""):
    """Every key of a metadata map, dotted sub-keys included (maps inside lists too)."""
    keys = []
    for k, v in md.items():
        full = prefix + k
        keys.append(full)
        if isinstance(v, dict):
            keys.extend(flatten_keys(v, full + "."))
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    keys.extend(flatten_keys(item, full + "."))
    return keys


def diff_ops(old, new, prefix=""):
    """Partial-update ops turning metadata `old` into `new`: (1, key, value) set, (2, key, None) delete."""
    ops = []
    for k, v in new.items():
        if k not in old:
            ops.append((1, prefix + k, v))
        else:
            ov = old[k]
            if ov == v and type(ov) is type(v):
                continue
            if isinstance(ov, dict) and isinstance(v, dict):
                ops.extend(diff_ops(ov, v, prefix + k + "."))
            else:
                ops.append((1, prefix + k, v))
    for k in old:
        if k not in new:
            ops.append((2, prefix + k, None))
    return ops
