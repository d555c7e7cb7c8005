// Per-column statistics of the dataset page: a one-line summary and a mini chart (a histogram for
// numbers, bars of the most frequent values otherwise), drawn as inline SVG from stored numbers.
import { el, formatNumber } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 120;
const HEIGHT = 28;

function svg(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function bars(counts, titles) {
  const chart = svg("svg", { width: WIDTH, height: HEIGHT, viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "mini-chart" });
  const highest = Math.max(1, ...counts);
  const width = WIDTH / Math.max(1, counts.length);
  counts.forEach((count, index) => {
    const height = count ? Math.max(1, (count / highest) * HEIGHT) : 0;
    const bar = svg("rect", { x: index * width + 0.5, y: HEIGHT - height, width: Math.max(1, width - 1), height });
    const title = svg("title", {});
    title.textContent = titles[index];
    bar.append(title);
    chart.append(bar);
  });
  return chart;
}

export function distributionChart(column) {
  if (column.histogram?.counts?.length) {
    const { edges, counts } = column.histogram;
    return bars(counts, counts.map((c, i) => `${formatNumber(edges[i])} – ${formatNumber(edges[i + 1])}: ${c}`));
  }
  if (column.top?.length) {
    return bars(
      column.top.map((t) => t.count),
      column.top.map((t) => `${t.value}: ${t.count}`),
    );
  }
  return el("span", { className: "muted" }, "–");
}

export function summaryText(column) {
  if (column.type === "numeric" && column.mean !== undefined && column.mean !== null) {
    return `min ${formatNumber(column.min)} · mean ${formatNumber(column.mean)} · max ${formatNumber(column.max)}`;
  }
  if (column.type === "date" && column.min) return `${column.min} → ${column.max}`;
  if (column.top?.length) {
    const shown = column.top.slice(0, 3).map((t) => `${t.value} (${t.count})`);
    return `top: ${shown.join(", ")}${column.top_approx ? " ≈" : ""}`;
  }
  return "";
}
