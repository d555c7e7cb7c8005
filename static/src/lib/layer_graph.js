// The model's layer graph as SVG: one row per topological depth (the longest path from an input),
// inputs on top, edges as curves from a layer to the layers it feeds. Multi-input, multi-output
// and residual (skip) connections are visible as such. Within a row, layers sit near the mean
// position of the layers feeding them, which keeps most edges short and uncrossed.

const SVG = "http://www.w3.org/2000/svg";
const NODE_WIDTH = 176;
const NODE_HEIGHT = 42;
const GAP_X = 22;
const GAP_Y = 46;
const MARGIN = 12;
const MAX_NAME = 24;
const SKIP_ROOM = 80;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  for (const child of children) node.append(child);
  return node;
}

const clip = (text, limit) => (text.length > limit ? `${text.slice(0, limit - 1)}…` : text);

// Depth of every layer: 0 for layers nothing feeds, else 1 + the deepest layer feeding it.
// Cycles cannot happen in a Keras graph; a malformed file still ends (each layer visited once).
export function layerDepths(names, edges) {
  const parents = new Map(names.map((name) => [name, []]));
  for (const [from, to] of edges) if (parents.has(to) && parents.has(from)) parents.get(to).push(from);
  const depth = new Map();
  const visiting = new Set();
  const visit = (name) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name)) return 0;
    visiting.add(name);
    const value = parents.get(name).reduce((deepest, parent) => Math.max(deepest, visit(parent) + 1), 0);
    visiting.delete(name);
    depth.set(name, value);
    return value;
  };
  for (const name of names) visit(name);
  return { depth, parents };
}

// layers: [{name, class, output_shape, params}], edges: [[from, to]], inputs/outputs: names.
export function drawLayerGraph(layers, edges, inputs = [], outputs = []) {
  const names = layers.map((layer) => layer.name);
  const byName = new Map(layers.map((layer) => [layer.name, layer]));
  const { depth, parents } = layerDepths(names, edges);
  const rows = [];
  for (const name of names) {
    const d = depth.get(name);
    (rows[d] ||= []).push(name);
  }
  // Order each row by the mean column of the layers feeding it (model order breaks ties).
  const column = new Map();
  rows.forEach((row, d) => {
    if (d > 0) {
      const order = new Map(names.map((name, index) => [name, index]));
      const center = (name) => {
        const feeding = parents.get(name).filter((p) => column.has(p));
        return feeding.length ? feeding.reduce((sum, p) => sum + column.get(p), 0) / feeding.length : Infinity;
      };
      row.sort((a, b) => center(a) - center(b) || order.get(a) - order.get(b));
    }
    row.forEach((name, index) => column.set(name, index - (row.length - 1) / 2));
  });
  const widest = Math.max(1, ...rows.map((row) => row.length));
  const isSkip = ([from, to]) => depth.get(to) - depth.get(from) > 1; // a residual / skip connection
  // Skip connections go round the right of the layers they jump over, in a margin of their own.
  const skipRoom = edges.some(isSkip) ? SKIP_ROOM : 0;
  const nodesWidth = widest * NODE_WIDTH + (widest - 1) * GAP_X + 2 * MARGIN;
  const width = nodesWidth + skipRoom;
  const height = rows.length * NODE_HEIGHT + (rows.length - 1) * GAP_Y + 2 * MARGIN;
  const position = new Map();
  rows.forEach((row, d) => {
    const rowWidth = row.length * NODE_WIDTH + (row.length - 1) * GAP_X;
    const start = (nodesWidth - rowWidth) / 2;
    row.forEach((name, index) => {
      position.set(name, { x: start + index * (NODE_WIDTH + GAP_X), y: MARGIN + d * (NODE_HEIGHT + GAP_Y) });
    });
  });

  const root = svg("svg", {
    class: "layer-graph",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Layer graph: ${layers.length} layers, ${edges.length} connections`,
  });
  root.append(svg("defs", {}, svg("marker", { id: "layer-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "layer-arrow" }))));
  const edgeGroup = svg("g", { class: "layer-edges" });
  for (const [from, to] of edges) {
    const a = position.get(from);
    const b = position.get(to);
    if (!a || !b) continue;
    const skip = isSkip([from, to]);
    let d;
    if (skip) {
      const x1 = a.x + NODE_WIDTH;
      const y1 = a.y + NODE_HEIGHT / 2;
      const x2 = b.x + NODE_WIDTH;
      const y2 = b.y + NODE_HEIGHT / 2;
      const bulge = Math.min(SKIP_ROOM - 8, 28 + 8 * (depth.get(to) - depth.get(from)));
      d = `M ${x1} ${y1} C ${x1 + bulge} ${y1}, ${x2 + bulge} ${y2}, ${x2} ${y2}`;
    } else {
      const x1 = a.x + NODE_WIDTH / 2;
      const y1 = a.y + NODE_HEIGHT;
      const x2 = b.x + NODE_WIDTH / 2;
      const y2 = b.y;
      const bend = Math.max(GAP_Y / 2, (y2 - y1) / 2);
      d = `M ${x1} ${y1} C ${x1} ${y1 + bend}, ${x2} ${y2 - bend}, ${x2} ${y2}`;
    }
    edgeGroup.append(svg("path", {
      d,
      class: skip ? "layer-edge layer-edge-skip" : "layer-edge",
      "marker-end": "url(#layer-arrow)",
      "data-from": from,
      "data-to": to,
    }));
  }
  root.append(edgeGroup);
  const inputSet = new Set(inputs);
  const outputSet = new Set(outputs);
  for (const name of names) {
    const layer = byName.get(name);
    const { x, y } = position.get(name);
    const kind = inputSet.has(name) || layer.class === "InputLayer" ? "input" : outputSet.has(name) ? "output" : "layer";
    const detail = [layer.class, layer.output_shape].filter(Boolean).join(" ");
    const title = svg("title");
    title.textContent = `${name} (${layer.class})\noutput ${layer.output_shape || "?"}\n${layer.params ?? "?"} parameters`;
    const label = svg("text", { x: x + NODE_WIDTH / 2, y: y + 17, class: "layer-name" });
    label.textContent = clip(name, MAX_NAME);
    const sub = svg("text", { x: x + NODE_WIDTH / 2, y: y + 33, class: "layer-detail" });
    sub.textContent = clip(detail, 30);
    root.append(svg("g", { class: `layer-node layer-${kind}`, "data-layer": name }, title,
      svg("rect", { x, y, width: NODE_WIDTH, height: NODE_HEIGHT, rx: 7 }), label, sub));
  }
  return root;
}
