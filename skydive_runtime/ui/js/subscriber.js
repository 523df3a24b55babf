// /ws/subscriber client: handshake via query parameters, SyncRequest with the Gremlin filter,
// reconnection with exponential backoff, and an inbound queue drained by the page once per frame.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

function uuid() {
  if (globalThis.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
  let s = "";
  for (let i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
  return s;
}

export class Subscriber {
  // handlers: onState(state, detail), onSyncReply(msg, ok, error), onMessages() (queue not empty)
  constructor({ url, filter = "", handlers = {} }) {
    this.url = url || Subscriber.defaultURL();
    this.filter = filter;            // the filter the user asked for ("" = whole graph)
    this.appliedFilter = "";         // the filter of the graph we hold (last accepted SyncRequest)
    this.synced = false;             // a SyncReply was accepted on the current connection
    this.handlers = handlers;
    this.queue = [];                 // inbound graph messages, in order
    this.ws = null;
    this.state = "disconnected";
    this.attempt = 0;
    this.retryTimer = null;
    this.retryAt = 0;
    this.pendingSync = new Map();    // request UUID -> filter sent
    this.hostId = "webui-" + uuid().slice(0, 12);
    this.connSeq = 0;
    this.stopped = false;
    this.lastMessageAt = 0;
  }

  static defaultURL() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws/subscriber`;
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  // Ask for the graph again, optionally with a new filter. Returns the request UUID.
  sync(filter) {
    if (filter !== undefined) this.filter = filter;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return null;
    const id = uuid();
    // "" explicitly resets the server-side filter to the whole graph
    this.pendingSync.set(id, this.filter);
    this._setState("syncing");
    this.ws.send(JSON.stringify({
      Namespace: "Graph", Type: "SyncRequest", UUID: id, Status: 200,
      Obj: { GremlinFilter: this.filter },
    }));
    return id;
  }

  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.attempt = 0;
    if (this.ws) this.ws.close(4000, "reconnect");
    else this._connect();
  }

  _connect() {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    const seq = ++this.connSeq;
    // a fresh X-Host-ID per connection: the previous socket may not be reaped yet (409)
    const params = new URLSearchParams({
      "x-client-type": "webui",
      "x-host-id": `${this.hostId}-${seq}`,
      "x-client-protocol": "json",
      "x-bulk-messages": "1",
      "x-websocket-namespace": "Graph",
    });
    params.append("x-websocket-namespace", "Alert");     // fired alerts (the Alerts tab's feed)
    let ws;
    this._setState("connecting");
    try {
      ws = new WebSocket(`${this.url}?${params}`);
    } catch (err) {
      this._scheduleRetry(String(err));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.synced = false;
      this.sync();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this._receive(ev.data);
    };
    ws.onerror = () => { /* onclose follows with the details */ };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.pendingSync.clear();
      if (this.stopped) { this._setState("disconnected", "closed"); return; }
      const why = ev.code === 1000 || ev.code === 4000 ? "" : ` (code ${ev.code}${ev.reason ? ": " + ev.reason : ""})`;
      this._scheduleRetry(`connection closed${why}`);
    };
  }

  _scheduleRetry(reason) {
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
    this.attempt++;
    this.retryAt = Date.now() + delay;
    this._setState("disconnected", reason);
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }

  _receive(data) {
    let decoded;
    try {
      decoded = JSON.parse(data);
    } catch (err) {
      console.warn("skydive: undecodable websocket frame", err);
      return;
    }
    const msgs = Array.isArray(decoded) ? decoded : [decoded];   // bulk frames carry arrays
    this.lastMessageAt = Date.now();
    let queued = false;
    for (const msg of msgs) {
      if (!msg || typeof msg !== "object") continue;
      if (msg.Namespace === "Alert") { if (this.handlers.onAlert) this.handlers.onAlert(msg.Obj); continue; }
      if (msg.Namespace !== "Graph") continue;   // OnDemand notifications: not shown
      if (msg.Type === "SyncReply" && this.pendingSync.has(msg.UUID)) {
        const sentFilter = this.pendingSync.get(msg.UUID);
        this.pendingSync.delete(msg.UUID);
        const ok = (msg.Status === undefined || msg.Status === 200) && msg.Obj && typeof msg.Obj === "object";
        if (!ok) {
          const error = typeof msg.Obj === "string" && msg.Obj ? msg.Obj
            : `the analyzer refused the filter (status ${msg.Status})`;
          this._setState("connected");
          this.filter = this.appliedFilter;
          if (this.handlers.onSyncReply) this.handlers.onSyncReply(msg, false, error, sentFilter);
          if (!this.synced && sentFilter !== "") {
            // nothing shown yet on this connection: fall back to the last good filter (or all)
            this.sync(this.appliedFilter !== sentFilter ? this.appliedFilter : "");
          }
          continue;
        }
        this.synced = true;
        this.appliedFilter = sentFilter;
        if (this.handlers.onSyncReply) this.handlers.onSyncReply(msg, true, null, sentFilter);
        this._setState("connected");
      }
      this.queue.push(msg);
      queued = true;
    }
    if (queued && this.handlers.onMessages) this.handlers.onMessages();
  }

  drain(max = Infinity) {
    if (this.queue.length <= max) {
      const q = this.queue;
      this.queue = [];
      return q;
    }
    return this.queue.splice(0, max);
  }

  _setState(state, detail = "") {
    this.state = state;
    if (this.handlers.onState) this.handlers.onState(state, detail);
  }
}
