"""The generic REST resource handler (graffiti/api/server/server.go RegisterAPIHandler).

One `ResourceHandler` class serves every resource; what differs per resource lives in a
`ResourceKind` (name, title, backend, decoding/validation, duplicate rule, updatable, decoration
on GET, CLI flags) and the backend it declares (`StoredBackend` for API resources kept in the
store, `GraphBackend` for the nodes and edges of the live graph). The analyzer's list of kinds is
analyzer/kinds.py.

Routes per resource R: GET /api/R (object keyed by ID), GET /api/R/<id>, POST /api/R (201),
PATCH /api/R/<id> (200, or 304 when nothing changed), DELETE /api/R/<id> (200, empty text/plain).
"""

import copy
import logging
import socket

from ..common.ids import new_uuid
from ..common.timeutil import now_ms, parse_duration_ms
from ..graph import Edge, GraphError, Node, SchemaError, validate
from ..storage import MAX_TTL_MS, InvalidWrite, StoreError, wait_committed
from .cliflags import Flag, parse_metadata
from .http import HTTPError, empty, json_response, read_body
from .jsonpatch import PatchError, apply_patch

log = logging.getLogger(__name__)


class ResourceError(ValueError):
    """A 400 with this message (validation failure)."""


class DuplicateError(Exception):
    """A 409 `duplicated resource`."""


class NotUpdatable(Exception):
    pass


class ResourceKind:
    """Per-resource behaviour. Subclasses set name/title and override what they need.

    backend: "stored" (kept by the ResourceStore, server-generated UUIDs, X-Resource-TTL) or
    "graph" (live graph elements: the kind also says how to find, add and remove them).
    command, aliases, noun, flags, cli_body: `skydive client <command> create` (cliflags.py).
    """

    name = ""
    title = ""
    backend = "stored"
    updatable = False
    command = ""        # the `skydive client` subcommand; the name when empty
    aliases = ()
    noun = ""           # "packet injection": the subcommand's help
    flags = ()          # cliflags.Flag: the create flags, in --help order
    cli_call = False    # `skydive client <command> call <id> params...`

    def __init__(self, engine=None):
        self.engine = engine

    def decode(self, data):
        """Body (already JSON-decoded) -> canonical resource, or ResourceError."""
        if not isinstance(data, dict):
            raise ResourceError("%s must be a JSON object" % self.title)
        return dict(data)

    def validate(self, obj):
        pass

    def is_duplicate(self, obj, existing):
        """existing: iterable of stored resources; True -> 409."""
        return False

    def finalize(self, obj):
        """The stored shape (omitempty fields dropped), once the UUID is set."""
        return obj

    def decorate(self, obj):
        """Value shown by GET (e.g. a computed Count); must not modify obj."""
        return obj

    def cli_body(self, body, args):
        """(body, headers) of `skydive client <command> create`, from the body the flags filled."""
        return body, {}


class StoredBackend:
    """API resources kept by the ResourceStore (IDs are server-generated UUIDs)."""

    def __init__(self, kind, resources):
        self.kind = kind
        self.resources = resources

    def list(self):
        return self.resources.list(self.kind.name)

    def get(self, rid):
        return self.resources.get(self.kind.name, rid)

    def create(self, obj, ttl_ms):
        if self.kind.is_duplicate(obj, self.resources.list(self.kind.name).values()):
            raise DuplicateError()
        obj["UUID"] = new_uuid()
        obj = self.kind.finalize(obj)
        try:
            self.resources.put(self.kind.name, obj["UUID"], obj, ttl_ms)
        except InvalidWrite as exc:
            raise ResourceError(str(exc)) from None
        return obj

    async def committed(self):
        await self.resources.committed()

    def undo_create(self, obj):
        self.resources.delete(self.kind.name, obj["UUID"])

    def update(self, rid, patched):
        raise NotUpdatable()

    def delete(self, rid):
        return self.resources.delete(self.kind.name, rid)


class ResourceStore:
    """Resources by kind and ID, written through to the store (when there is one), with TTL.

    Watchers get `on_resource_created(kind, obj)` and `on_resource_deleted(kind, obj)`.
    """

    def __init__(self, store=None, now=now_ms):
        self.store = store
        self.now = now
        self.items = {}
        self.expiry = {}
        self.watchers = []
        self._gone = {}        # (kind, id) -> time deleted here: a late echo of its creation is ignored

    def load(self, kinds):
        """Read the resources kept by the store (after dropping the expired ones)."""
        if self.store is None:
            return
        self.store.expire_resources(self.now())
        for kind in kinds:
            self.items[kind] = dict(self.store.list_resources(kind))

    def _alive(self, kind, rid):
        at = self.expiry.get((kind, rid))
        return at is None or at > self.now()

    def list(self, kind):
        bucket = self.items.get(kind, {})
        if not self.expiry:
            return bucket
        return {rid: obj for rid, obj in bucket.items() if self._alive(kind, rid)}

    def get(self, kind, rid):
        obj = self.items.get(kind, {}).get(rid)
        if obj is None or not self._alive(kind, rid):
            return None
        return obj

    def put(self, kind, rid, obj, ttl_ms=None):
        if self.store is not None:
            self.store.put_resource(kind, rid, obj, ttl_ms)
        self.items.setdefault(kind, {})[rid] = obj
        if ttl_ms:
            self.expiry[(kind, rid)] = self.now() + ttl_ms
        self._notify("on_resource_created", kind, obj)
        return obj

    async def committed(self):
        """Wait until the writes made so far are committed to the store (group commit)."""
        if self.store is not None:
            await wait_committed(self.store)

    def delete(self, kind, rid):
        if self.get(kind, rid) is None:
            return False
        obj = self.items[kind].pop(rid)
        self.expiry.pop((kind, rid), None)
        self._gone[(kind, rid)] = self.now()
        if self.store is not None:
            self.store.forget_resource(kind, rid)   # queued: the handler awaits its commit
        self._notify("on_resource_deleted", kind, obj)
        return True

    def expire(self, expired_in_store=None):
        """Drop the resources whose X-Resource-TTL has passed (also those restored from the store).
        expired_in_store: what store.expire_resources(now) returned, when the caller ran it."""
        now = self.now()
        for (kind, rid), at in list(self.expiry.items()):
            if at <= now:
                log.info("%s %s expired (X-Resource-TTL)", kind, rid)
                obj = self.items.get(kind, {}).pop(rid, None)
                del self.expiry[(kind, rid)]
                self._gone[(kind, rid)] = now
                if obj is not None:
                    self._notify("on_resource_deleted", kind, obj)
        if self.store is not None:
            if expired_in_store is None:
                expired_in_store = self.store.expire_resources(now)
            for kind, rid, obj in expired_in_store or ():
                if self.items.get(kind, {}).pop(rid, None) is not None:
                    log.info("%s %s expired (X-Resource-TTL)", kind, rid)
                    self.expiry.pop((kind, rid), None)
                    self._notify("on_resource_deleted", kind, obj)

    def follow(self, loop):
        """Apply the changes other analyzers make to a shared store (`store.follow`, etcd): the
        watchers see them as if they were made here."""
        def changed(event, kind, rid, obj):
            loop.call_soon_threadsafe(self.apply_remote, event, kind, rid, obj)
        self.store.follow(changed)

    def apply_remote(self, event, kind, rid, obj):
        bucket = self.items.setdefault(kind, {})
        now = self.now()
        for key in [k for k, t in self._gone.items() if now - t > 600_000]:
            del self._gone[key]
        if event == "PUT":
            if (kind, rid) in self._gone or bucket.get(rid) == obj:
                return
            bucket[rid] = obj
            self._notify("on_resource_created", kind, obj)
            return
        old = bucket.pop(rid, None)
        self._gone[(kind, rid)] = now
        if old is not None:
            self.expiry.pop((kind, rid), None)
            log.info("%s %s deleted (by another analyzer or its TTL)", kind, rid)
            self._notify("on_resource_deleted", kind, old)

    def _notify(self, event, kind, obj):
        for w in self.watchers:
            fn = getattr(w, event, None)
            if fn is None:
                continue
            try:
                fn(kind, obj)
            except Exception:
                log.exception("resource watcher %r failed on %s %s", w, event, kind)


# ---- graph-backed resources ------------------------------------------------------------------------

def _cli_element(body, args):
    """A node/edge as the Go CLI makes it: random ID, Host, Origin cli.<host>, Revision 1."""
    host = args.host or socket.gethostname()
    t = now_ms()
    out = {"ID": new_uuid(), "Host": host, "Origin": "cli." + host, "CreatedAt": t, "UpdatedAt": t, "Revision": 1}
    out.update(body)
    return out, {}


class _GraphKind(ResourceKind):
    backend = "graph"
    updatable = True
    cls = None
    protected = ()      # Metadata keys a PATCH cannot change

    def decode(self, data):
        if not isinstance(data, dict):
            raise ResourceError("%s must be a JSON object" % self.title)
        try:
            el = self.cls.from_dict(data)
            validate(el)
        except (ValueError, SchemaError) as exc:
            raise ResourceError(str(exc)) from None
        return el

    def cli_body(self, body, args):
        return _cli_element(body, args)

    # the graph's own methods for this element kind (`name` is "node" or "edge")
    def elements(self, graph):
        return getattr(graph, self.name + "s")

    def add(self, graph, el):
        getattr(graph, "add_" + self.name)(el)

    def remove(self, graph, el):
        getattr(graph, "del_" + self.name)(el)


_METADATA = Flag("--metadata", field="Metadata", to=parse_metadata, default="", help="'k1=v1, k2.sub=v2'")
_HOST = Flag("--host", default="", help="Host of the element (default: this host)")


class NodeKind(_GraphKind):
    name = "node"
    title = "Node"
    cls = Node
    protected = ("TID", "Name", "Type")
    flags = (Flag("--node-name", field="Metadata.Name", required=True),
             Flag("--node-type", field="Metadata.Type", required=True), _METADATA, _HOST)


class EdgeKind(_GraphKind):
    name = "edge"
    title = "Edge"
    cls = Edge
    flags = (Flag("--parent", field="Parent", required=True), Flag("--child", field="Child", required=True),
             Flag("--edge-type", field="Metadata.RelationType", required=True, help="RelationType"),
             _METADATA, _HOST)


class GraphBackend:
    """Nodes or edges of the live graph (IDs given by the client; no TTL: they do not expire)."""

    def __init__(self, kind, graph, origin, store=None):
        self.kind = kind
        self.graph = graph
        self.origin = origin
        self.store = store      # the history store archiving this graph: a 2xx waits for its commit

    async def committed(self):
        if self.store is not None:
            await wait_committed(self.store)

    def undo_create(self, obj):
        self.kind.remove(self.graph, self._elements()[obj["ID"]])

    def _elements(self):
        return self.kind.elements(self.graph)

    def list(self):
        return {eid: el.to_dict() for eid, el in self._elements().items()}

    def get(self, rid):
        el = self._elements().get(rid)
        return el.to_dict() if el is not None else None

    def create(self, el, ttl_ms):
        if ttl_ms:
            raise ResourceError("X-Resource-TTL: %s resources do not expire (only the stored ones do)"
                                % self.kind.name)
        if not el.Origin:
            el.Origin = self.origin
        try:
            self.kind.add(self.graph, el)
        except GraphError as exc:
            raise ResourceError(str(exc)) from None
        return el.to_dict()

    def update(self, rid, patched):
        el = self._elements().get(rid)
        if el is None:
            return None
        try:
            new = self.kind.decode(patched)
        except ResourceError as exc:
            raise ResourceError("validating patched resource: %s" % exc) from None
        md = new.Metadata
        for key in self.kind.protected:
            if key in el.Metadata:
                md[key] = el.Metadata[key]
        if not self.graph.set_metadata(el, md):
            return False
        return el.to_dict()

    def delete(self, rid):
        el = self._elements().get(rid)
        if el is None:
            return False
        self.kind.remove(self.graph, el)
        return True


def backend_of(kind, resources, graph, origin, store=None):
    """The backend a kind declares: StoredBackend (the ResourceStore) or GraphBackend (`store`:
    the history store archiving the graph)."""
    if kind.backend == "graph":
        return GraphBackend(kind, graph, origin, store)
    return StoredBackend(kind, resources)


# ---- the handler -------------------------------------------------------------------------------------

def parse_ttl(request):
    raw = request.headers.get("X-Resource-TTL")
    if raw is None or raw == "":
        return None
    try:
        ms = parse_duration_ms(raw)
    except (ValueError, OverflowError) as exc:
        raise HTTPError(400, "invalid ttl: %s" % exc) from None
    if ms < 0:
        raise HTTPError(400, "invalid ttl: %r is negative" % raw)
    if ms > MAX_TTL_MS:
        raise HTTPError(400, "invalid ttl: %r is too large (at most %dms, about 292 years)" % (raw, MAX_TTL_MS))
    return ms or None


class ResourceHandler:
    def __init__(self, kind, backend, guard):
        self.kind = kind
        self.backend = backend
        self.guard = guard      # callable(request, object, action) raising HTTPError

    def register(self, app):
        base = "/api/" + self.kind.name
        r = app.router
        r.add_get(base, self.list)
        r.add_get(base + "/", self.list)
        r.add_post(base, self.create)
        r.add_post(base + "/", self.create)
        r.add_get(base + "/{id}", self.get)
        r.add_patch(base + "/{id}", self.patch)
        r.add_delete(base + "/{id}", self.delete)

    def _decorate(self, obj):
        try:
            return self.kind.decorate(obj)
        except Exception:     # decoration is informative only: never fail a GET on it
            log.exception("decorating %s failed", self.kind.name)
            return obj

    async def list(self, request):
        self.guard(request, self.kind.name, "read")
        items = self.backend.list()
        return json_response({rid: self._decorate(obj) for rid, obj in items.items()})

    def _id(self, request):
        rid = request.match_info.get("id", "")
        if not rid:
            raise HTTPError(400, "empty id")
        return rid

    async def get(self, request):
        self.guard(request, self.kind.name, "read")
        rid = self._id(request)
        obj = self.backend.get(rid)
        if obj is None:
            raise HTTPError(404, "%s '%s' not found" % (self.kind.title, rid))
        return json_response(self._decorate(obj))

    async def create(self, request):
        self.guard(request, self.kind.name, "write")
        ttl = parse_ttl(request)
        data = await read_body(request)
        try:
            obj = self.create_object(data, ttl)
        except ResourceError as exc:
            raise HTTPError(400, str(exc)) from None
        except DuplicateError:
            raise HTTPError(409, "duplicated resource") from None
        try:
            await self.backend.committed()
        except StoreError as exc:
            self.backend.undo_create(obj)
            raise HTTPError(503, "%s not created: %s" % (self.kind.title, exc)) from None
        return json_response(self._decorate(obj), status=201)

    def create_object(self, data, ttl_ms=None):
        """What POST does (decode, validate, create), for the analyzer's own resources too.
        Raises ResourceError (400) or DuplicateError (409)."""
        obj = self.kind.decode(data)
        self.kind.validate(obj)
        return self.backend.create(obj, ttl_ms)

    async def _committed(self, what):
        try:
            await self.backend.committed()
        except StoreError as exc:
            raise HTTPError(503, "%s %s but not stored: %s" % (self.kind.title, what, exc)) from None

    async def patch(self, request):
        self.guard(request, self.kind.name, "write")
        rid = self._id(request)
        current = self.backend.get(rid)
        if current is None:
            return empty(404)
        data = await read_body(request)
        try:
            patched = apply_patch(current, data)
        except PatchError as exc:
            raise HTTPError(400, "failed to apply patch: %s" % exc) from None
        except RecursionError:
            raise HTTPError(400, "failed to apply patch: document too deep") from None
        try:
            result = self.backend.update(rid, patched)
        except NotUpdatable:
            raise HTTPError(400, "resource not updatable") from None
        except ResourceError as exc:
            raise HTTPError(400, str(exc)) from None
        if result is None:
            return empty(404)
        if result is False:
            return empty(304)
        await self._committed("updated")
        return json_response(self._decorate(result))

    async def delete(self, request):
        self.guard(request, self.kind.name, "write")
        rid = self._id(request)
        if not self.backend.delete(rid):
            raise HTTPError(404, "%s '%s' not found" % (self.kind.title, rid))
        await self._committed("deleted")
        return empty(200, "text/plain")


def stored_copy(obj):
    return copy.deepcopy(obj)
