// THE websocket client for /ws/sessions/<id>/ (the only module that opens a socket).
//
// It keeps one session state, fed by the page's embedded JSON first and then by the stream:
// a `snapshot` (the whole stored session; sent again after every reconnect), then `status`,
// `model`, `progress`, `epoch`, `kept`, `log` and `done` events. Epochs are keyed by number, so an epoch
// seen both in a snapshot and as an event (the server subscribes before it reads the snapshot)
// is drawn once. The page renders from the callbacks; it never polls.

export const FINAL_STATUSES = new Set(["succeeded", "interrupted", "failed", "aborted"]);
export const isFinal = (status) => FINAL_STATUSES.has(status);

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

export class SessionStream {
  // handlers: {snapshot(state), status(state), model(state), progress(state), epoch(row, state),
  //            kept(state), log(entry, state), done(state), connection(kind)} — all optional.
  constructor(socketPath, initial, handlers = {}) {
    this.socketPath = socketPath;
    this.handlers = handlers;
    this.state = { ...initial, logs: [...(initial.logs || [])] };
    this.epochs = new Map();
    this.mergeEpochs(initial.metrics || []);
    this.socket = null;
    this.retryMs = FIRST_RETRY_MS;
    this.retryTimer = null;
    this.stopped = false;
  }

  // Epoch rows in epoch order (what charts and the epoch table draw).
  epochRows() {
    return [...this.epochs.values()].sort((a, b) => a.epoch - b.epoch);
  }

  start() {
    this.emit("snapshot", this.state);
    this.connect();
    // A laptop waking up or a network coming back should not wait out the backoff.
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.socket) this.socket.close(1000);
  }

  connect() {
    if (this.stopped) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${window.location.host}${this.socketPath}`);
    this.socket = socket;
    this.emit("connection", this.retryMs === FIRST_RETRY_MS ? "connecting" : "reconnecting");
    socket.addEventListener("open", () => {
      this.retryMs = FIRST_RETRY_MS;
      this.emit("connection", "live");
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours to interpret; the stream only carries JSON objects
      }
      this.apply(event);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (this.stopped) return;
      if (isFinal(this.state.status)) {
        // Nothing more will happen to a finished session; the page already shows all of it.
        this.emit("connection", "ended");
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    const delay = this.retryMs * (0.75 + Math.random() * 0.5); // jitter: reloads do not stampede
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.emit("connection", "reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (this.stopped || this.socket || isFinal(this.state.status)) return;
    clearTimeout(this.retryTimer);
    this.retryMs = FIRST_RETRY_MS;
    this.connect();
  }

  apply(event) {
    const state = this.state;
    switch (event.type) {
      case "snapshot": {
        const { type, ...session } = event;
        this.state = { ...state, ...session, logs: [...(session.logs || [])] };
        this.mergeEpochs(session.metrics || []);
        this.emit("snapshot", this.state);
        break;
      }
      case "status":
        // A late status never takes a finished session back to running.
        if (!isFinal(state.status) || isFinal(event.status)) state.status = event.status || state.status;
        if (event.phase !== undefined) state.phase = event.phase;
        // The server announces requests as these phases; remember them past the next phase change.
        if (event.phase === "stopping") state.interrupt_requested = true;
        if (event.phase === "aborting") state.abort_requested = true;
        this.emit("status", state);
        break;
      case "model":
        state.model = { summary: event.summary, params: event.params, input_shapes: event.input_shapes,
                        n_classes: event.n_classes, kept: state.model?.kept };
        this.emit("model", state);
        break;
      case "progress":
        state.progress = { epoch: event.epoch, batch: event.batch, of: event.of };
        // Epochs planned, as the fit knows them (advanced mode's code decides them).
        if (Number.isInteger(event.epochs) && event.epochs > 0) state.epochs_total = event.epochs;
        this.emit("progress", state);
        break;
      case "epoch": {
        const row = { epoch: event.epoch, seconds: event.seconds, values: event.values || {},
                      partial: Boolean(event.partial) };
        if (this.mergeEpochs([row]).length) this.emit("epoch", row, state);
        break;
      }
      case "kept":
        // Which epoch's weights the model has; stored as the session's model_info.kept too.
        state.model = { ...(state.model || {}),
                        kept: { epoch: event.epoch, metric: event.metric, value: event.value, keep: event.keep } };
        this.emit("kept", state);
        break;
      case "log": {
        const entry = { stream: event.stream, text: event.text };
        state.logs.push(entry);
        this.emit("log", entry, state);
        break;
      }
      case "done":
        state.status = event.status || state.status;
        if (event.final_metrics !== undefined) state.final_metrics = event.final_metrics;
        if (event.error !== undefined) state.error = event.error;
        if (event.artifacts) state.artifacts = Object.keys(event.artifacts);
        this.emit("done", state);
        break;
      default:
        break; // newer servers may add event types; older pages ignore them
    }
  }

  // Adds rows not seen yet (or replacing a partial epoch by its complete one); returns those taken.
  mergeEpochs(rows) {
    const taken = [];
    for (const row of rows) {
      if (typeof row.epoch !== "number") continue;
      const known = this.epochs.get(row.epoch);
      if (known && !(known.partial && !row.partial)) continue;
      this.epochs.set(row.epoch, row);
      taken.push(row);
    }
    let done = this.state.epochs_done || 0;
    for (const row of this.epochs.values()) if (!row.partial && row.epoch > done) done = row.epoch;
    this.state.epochs_done = done;
    this.state.metrics = this.epochRows();
    return taken;
  }

  emit(name, ...args) {
    const handler = this.handlers[name];
    if (handler) handler(...args);
  }
}
