// Human units: 2,744 (not 2744), RTT in ms (flows carry ns), bytes with their unit.

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function count(n) {
  return typeof n === "number" && isFinite(n) ? INT.format(n) : "";
}

// ns -> "0.123" ms (3 significant decimals under 10 ms)
export function rttMs(ns) {
  if (typeof ns !== "number" || !ns) return "";
  const ms = ns / 1e6;
  return ms >= 100 ? INT.format(ms) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(3);
}

export function rate(perSecond, unit) {
  if (typeof perSecond !== "number" || !isFinite(perSecond)) return "";
  const steps = unit === "B" ? ["B", "KB", "MB", "GB"] : ["", "k", "M", "G"];
  let v = perSecond, i = 0;
  while (v >= 1000 && i < steps.length - 1) { v /= 1000; i++; }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${steps[i]}${unit === "B" ? "" : unit}/s`.replace("  ", " ");
}

export function isoTime(ms) {
  const d = new Date(ms);
  return isNaN(d) ? "" : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}
