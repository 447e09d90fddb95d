// A small SVG line chart: one or more series of {x, y} points on a shared time axis.
const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#2f6fd6", "#d6612f", "#2fa36b", "#9b4fd6"];

function node(tag, attrs) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  return n;
}

export function lineChart(title, series, { width = 360, height = 140 } = {}) {
  const svg = node("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "chart" });
  svg.dataset.title = title;
  const pad = { l: 40, r: 8, t: 16, b: 18 };
  const all = series.flatMap((s) => s.points).filter((p) => p.y !== null && p.y !== undefined);
  const title_ = node("text", { x: pad.l, y: 11 });
  title_.textContent = title;
  svg.append(title_);
  if (all.length === 0) {
    const t = node("text", { x: pad.l, y: height / 2 });
    t.textContent = "no data yet";
    svg.append(t);
    return svg;
  }
  const xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const y1 = Math.max(...ys, 1) * 1.1;
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  svg.append(node("line", { x1: pad.l, y1: height - pad.b, x2: width - pad.r, y2: height - pad.b, stroke: "#ccd" }));
  const top = node("text", { x: 2, y: pad.t + 4 });
  top.textContent = y1 >= 100 ? y1.toFixed(0) : y1.toPrecision(2);
  svg.append(top);
  series.forEach((s, i) => {
    const legend = series.length > 1;
    const pts = s.points.filter((p) => p.y !== null && p.y !== undefined);
    if (pts.length === 0) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
    svg.append(node("path", { d, fill: "none", stroke: COLOURS[i % COLOURS.length], "stroke-width": 1.5 }));
    for (const p of pts.length < 40 ? pts : []) {
      svg.append(node("circle", { cx: sx(p.x), cy: sy(p.y), r: 2, fill: COLOURS[i % COLOURS.length] }));
    }
    if (!legend) return;
    const label = node("text", { x: width - pad.r - 60, y: 11 + 11 * i, fill: COLOURS[i % COLOURS.length] });
    label.textContent = s.name;
    svg.append(label);
  });
  return svg;
}
