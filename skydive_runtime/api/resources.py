"""The generic REST resource handler (graffiti/api/server/server.go RegisterAPIHandler).

One `ResourceHandler` class serves every resource; what differs per resource lives in a
`ResourceKind` (name, title, decoding/validation, duplicate rule, updatable, decoration on GET,
create/delete hooks) and a backend (`StoredBackend` for API resources kept in the store,
`NodeBackend`/`EdgeBackend` for the live graph).

Routes per resource R: GET /api/R (object keyed by ID), GET /api/R/<id>, POST /api/R (201),
PATCH /api/R/<id> (200, or 304 when nothing changed), DELETE /api/R/<id> (200, empty text/plain).
"""

import copy
import logging

from ..common.ids import new_uuid
from ..common.timeutil import now_ms, parse_duration_ms
from ..graph import Edge, GraphError, Node, SchemaError, validate
from ..storage import MAX_TTL_MS, InvalidWrite, StoreError, wait_committed
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
    """Per-resource behaviour. Subclasses set name/title and override what they need."""

    name = ""
    title = ""
    updatable = False

    def decode(self, data):
        """Body (already JSON-decoded) -> canonical resource dict, or ResourceError."""
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

class NodeKind(ResourceKind):
    name = "node"
    title = "Node"
    updatable = True


class EdgeKind(ResourceKind):
    name = "edge"
    title = "Edge"
    updatable = True


class _GraphBackend:
    cls = None
    protected = ()

    def __init__(self, kind, graph, origin, store=None):
        self.kind = kind
        self.graph = graph
        self.origin = origin
        self.store = store      # the history store archiving this graph: a 2xx waits for its commit

    async def committed(self):
        if self.store is not None:
            await wait_committed(self.store)

    def undo_create(self, obj):
        self._delete(self._elements()[obj["ID"]])

    def _elements(self):
        raise NotImplementedError

    def list(self):
        return {eid: el.to_dict() for eid, el in self._elements().items()}

    def get(self, rid):
        el = self._elements().get(rid)
        return el.to_dict() if el is not None else None

    def decode(self, data):
        el = self.cls.from_dict(data)
        validate(el)
        return el

    def update(self, rid, patched):
        el = self._elements().get(rid)
        if el is None:
            return None
        try:
            new = self.decode(patched)
        except (ValueError, SchemaError) as exc:
            raise ResourceError("validating patched resource: %s" % exc) from None
        md = new.Metadata
        for key in self.protected:
            if key in el.Metadata:
                md[key] = el.Metadata[key]
        if not self.graph.set_metadata(el, md):
            return False
        return el.to_dict()

    def delete(self, rid):
        el = self._elements().get(rid)
        if el is None:
            return False
        self._delete(el)
        return True


class NodeBackend(_GraphBackend):
    cls = Node
    protected = ("TID", "Name", "Type")

    def _elements(self):
        return self.graph.nodes

    def create(self, data, ttl_ms):
        try:
            node = self.decode(data)
        except (ValueError, SchemaError) as exc:
            raise ResourceError(str(exc)) from None
        if not node.Origin:
            node.Origin = self.origin
        try:
            self.graph.add_node(node)
        except GraphError as exc:
            raise ResourceError(str(exc)) from None
        return node.to_dict()

    def _delete(self, node):
        self.graph.del_node(node)


class EdgeBackend(_GraphBackend):
    cls = Edge

    def _elements(self):
        return self.graph.edges

    def create(self, data, ttl_ms):
        try:
            edge = self.decode(data)
        except (ValueError, SchemaError) as exc:
            raise ResourceError(str(exc)) from None
        if not edge.Origin:
            edge.Origin = self.origin
        try:
            self.graph.add_edge(edge)
        except GraphError as exc:
            raise ResourceError(str(exc)) from None
        return edge.to_dict()

    def _delete(self, edge):
        self.graph.del_edge(edge)


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
            if isinstance(self.backend, _GraphBackend):
                if not isinstance(data, dict):
                    raise ResourceError("%s must be a JSON object" % self.kind.title)
                obj = self.backend.create(data, ttl)
            else:
                obj = self.kind.decode(data)
                self.kind.validate(obj)
                obj = self.backend.create(obj, ttl)
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
