// streamline dashboard: draws /api/dashboard (the deployed DashboardBody and its data) the way
// the CloudWatch console does, and refreshes it. No build step: plain browser JavaScript, with
// Chart.js's UMD bundle (global `Chart`) served from the project's node_modules.
"use strict";

(() => {
  // CloudWatch's classic graph palette, in the order it assigns colours to a widget's lines.
  const PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
  ];
  const STATE_LABELS = {
    ALARM: "In alarm",
    OK: "OK",
    INSUFFICIENT_DATA: "Insufficient data",
    NOT_FOUND: "Not found",
  };
  const NO_DATA = "No data available.";

  const grid = document.getElementById("grid");
  const banner = document.getElementById("banner");
  const refreshSelect = document.getElementById("refresh");
  const charts = new Map(); // widget index -> {kind, chart}
  let frames = [];
  let layout = "";
  let refreshSeconds = null; // null until the server says its default
  let timer = null;
  let loads = 0;

  // -- loading and refreshing -------------------------------------------------------------------

  async function load() {
    clearTimeout(timer);
    try {
      const response = await fetch("/api/dashboard", { cache: "no-store" });
      const payload = await response.json();
      if (!response.ok) throw new Error(payload.error || `HTTP ${response.status}`);
      render(payload);
      banner.hidden = true;
      loads += 1;
      document.body.dataset.loads = String(loads);
    } catch (error) {
      banner.textContent = `Could not refresh the dashboard: ${error.message || error}`;
      banner.hidden = false;
    } finally {
      schedule();
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (refreshSeconds > 0) timer = setTimeout(load, refreshSeconds * 1000);
  }

  refreshSelect.addEventListener("change", () => {
    refreshSeconds = Number(refreshSelect.value);
    schedule();
  });
  document.getElementById("refresh-now").addEventListener("click", load);

  function useServerRefresh(seconds) {
    if (refreshSeconds !== null) return; // the operator's choice wins after the first load
    refreshSeconds = seconds;
    if (![...refreshSelect.options].some((o) => Number(o.value) === seconds)) {
      refreshSelect.add(new Option(`${seconds} second${seconds === 1 ? "" : "s"}`, String(seconds)), 1);
    }
    refreshSelect.value = String(seconds);
  }

  // -- the page ---------------------------------------------------------------------------------

  function render(payload) {
    useServerRefresh(payload.refresh);
    document.title = `${payload.dashboard} - CloudWatch dashboard`;
    document.getElementById("dashboard-name").textContent = payload.dashboard;
    document.getElementById("target").textContent = payload.target;
    document.getElementById("range").textContent = `last ${duration(payload.since)}`;
    document.getElementById("updated").textContent =
      `Last updated ${new Date(payload.updated).toLocaleTimeString()}`;

    // Rebuild the frames only when the body's layout changed (a redeploy); otherwise update
    // the widgets in place, so charts do not flicker on every refresh.
    const shape = payload.widgets.map((w) => [w.type, w.x, w.y, w.width, w.height].join()).join("|");
    if (shape !== layout) {
      for (const { chart } of charts.values()) chart.destroy();
      charts.clear();
      frames = payload.widgets.map(frame);
      grid.replaceChildren(...frames);
      layout = shape;
    }
    payload.widgets.forEach((widget, index) => update(frames[index], widget, index, payload));
  }

  function frame(widget, index) {
    const el = document.createElement("section");
    el.className = `widget widget-${widget.type || "unknown"}`;
    el.dataset.index = String(index);
    el.dataset.type = widget.type;
    // CloudWatch's grid: 24 columns; x/y/width/height in grid units.
    el.style.gridColumn = `${widget.x + 1} / span ${widget.width}`;
    el.style.gridRow = `${widget.y + 1} / span ${widget.height}`;
    const title = document.createElement("h2");
    const body = document.createElement("div");
    body.className = "body";
    el.append(title, body);
    return el;
  }

  function update(el, widget, index, payload) {
    const [title, body] = el.children;
    title.textContent = widget.title || "";
    title.hidden = !widget.title;
    el.dataset.title = widget.title || "";
    if (widget.error) {
      dropChart(index);
      setState(el, "error");
      body.replaceChildren(message(`Error: ${widget.error}`, "error"));
    } else if (widget.unsupported) {
      dropChart(index);
      setState(el, "unsupported");
      body.replaceChildren(message(widget.unsupported));
    } else if (widget.type === "text") {
      updateText(el, body, widget);
    } else if (widget.type === "alarm") {
      updateAlarms(el, body, widget);
    } else if (widget.type === "metric") {
      updateMetric(el, body, widget, index, payload);
    }
  }

  function setState(el, state) {
    el.dataset.state = state;
  }

  function message(text, kind) {
    const div = document.createElement("div");
    div.className = kind ? `message ${kind}` : "message";
    div.textContent = text;
    return div;
  }

  // -- text -------------------------------------------------------------------------------------

  function updateText(el, body, widget) {
    el.classList.toggle("transparent", widget.background === "transparent");
    const div = document.createElement("div");
    div.className = "markdown";
    div.innerHTML = renderMarkdown(widget.markdown); // every text run is escaped first
    body.replaceChildren(div);
    setState(el, "data");
  }

  // A small markdown subset (what dashboards' text widgets use): headings, paragraphs, lists,
  // **bold**, *italic*, `code` and [links](https://...). HTML in the source is shown, not run.
  function renderMarkdown(source) {
    const out = [];
    let paragraph = [];
    let list = [];
    const flushParagraph = () => {
      if (paragraph.length) out.push(`<p>${paragraph.map(inline).join(" ")}</p>`);
      paragraph = [];
    };
    const flushList = () => {
      if (list.length) out.push(`<ul>${list.map((item) => `<li>${inline(item)}</li>`).join("")}</ul>`);
      list = [];
    };
    for (const line of String(source || "").replace(/\r\n?/g, "\n").split("\n")) {
      const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
      const item = /^\s*[-*+]\s+(.*)$/.exec(line);
      if (heading) {
        flushParagraph();
        flushList();
        const level = heading[1].length;
        out.push(`<h${level}>${inline(heading[2])}</h${level}>`);
      } else if (item) {
        flushParagraph();
        list.push(item[1]);
      } else if (!line.trim()) {
        flushParagraph();
        flushList();
      } else {
        flushList();
        paragraph.push(line.trim());
      }
    }
    flushParagraph();
    flushList();
    return out.join("");
  }

  function inline(text) {
    // Code spans first: their contents stay literal (no bold or links inside).
    return text
      .split(/(`[^`]+`)/)
      .map((part) =>
        /^`[^`]+`$/.test(part) ? `<code>${escapeHtml(part.slice(1, -1))}</code>` : emphasis(escapeHtml(part)),
      )
      .join("");
  }

  function emphasis(escaped) {
    return escaped
      .replace(/\[(?:button:(?:primary:)?)?([^\]]+)\]\(([^)\s]+)\)/g, (all, label, url) =>
        /^(https?:|mailto:|#)/i.test(url)
          ? `<a href="${url}" target="_blank" rel="noopener noreferrer">${label}</a>`
          : label,
      )
      .replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>")
      .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>");
  }

  function escapeHtml(text) {
    return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  }

  // -- alarm status -----------------------------------------------------------------------------

  function updateAlarms(el, body, widget) {
    const list = document.createElement("ul");
    list.className = "alarms";
    for (const alarm of widget.alarms) {
      const li = document.createElement("li");
      li.className = `alarm state-${alarm.state}`;
      li.dataset.state = alarm.state;
      li.dataset.name = alarm.name;
      li.title = alarm.reason || "";
      const state = document.createElement("span");
      state.className = "state";
      state.textContent = STATE_LABELS[alarm.state] || alarm.state;
      li.append(state, document.createTextNode(alarm.name));
      list.append(li);
    }
    body.replaceChildren(widget.alarms.length ? list : message("No alarms."));
    setState(el, widget.alarms.length ? "data" : "nodata");
  }

  // -- metrics ----------------------------------------------------------------------------------

  function updateMetric(el, body, widget, index, payload) {
    const series = widget.series.map((s, i) => ({ ...s, color: s.color || PALETTE[i % PALETTE.length] }));
    const withData = series.filter((s) => s.values.length);
    const notes = series.filter((s) => s.note).map((s) => `${s.label}: ${s.note}`);
    if (!withData.length) {
      dropChart(index);
      setState(el, "nodata");
      body.replaceChildren(message(NO_DATA));
      return;
    }
    setState(el, "data");
    if (widget.view === "singleValue") {
      dropChart(index);
      body.replaceChildren(singleValues(series), ...notes.map(note));
      return;
    }
    const kind = widget.view === "bar" || widget.view === "pie" ? widget.view : "line";
    let entry = charts.get(index);
    if (!entry || entry.kind !== kind) {
      dropChart(index);
      const box = document.createElement("div");
      box.className = "chart";
      const canvas = document.createElement("canvas");
      box.append(canvas);
      body.replaceChildren(box);
      entry = { kind, chart: new Chart(canvas, chartConfig(kind)) };
      charts.set(index, entry);
    }
    const box = entry.chart.canvas.parentElement;
    body.replaceChildren(box, ...notes.map(note));
    box.style.height = notes.length ? `calc(100% - ${notes.length * 16}px)` : "100%";
    if (kind === "line") fillLine(entry.chart, widget, series, payload);
    else fillSummary(entry.chart, kind, series);
    entry.chart.update("none");
  }

  function note(text) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = text;
    p.title = text;
    return p;
  }

  function singleValues(series) {
    const box = document.createElement("div");
    box.className = "values";
    for (const s of series) {
      const latest = s.values.length ? s.values[s.values.length - 1] : null;
      const item = document.createElement("div");
      item.className = "value";
      const number = document.createElement("div");
      number.className = "number";
      number.textContent = latest === null ? "-" : formatNumber(latest);
      const label = document.createElement("div");
      label.className = "label";
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = s.color;
      label.append(swatch, document.createTextNode(s.label));
      item.append(number, label);
      box.append(item);
    }
    return box;
  }

  function chartConfig(kind) {
    const common = { animation: false, responsive: true, maintainAspectRatio: false };
    if (kind !== "line") {
      return { type: kind, data: { labels: [], datasets: [] }, options: { ...common, plugins: { legend: { display: kind === "pie" } } } };
    }
    return {
      type: "line",
      data: { datasets: [] },
      options: {
        ...common,
        parsing: false,
        normalized: true,
        interaction: { mode: "nearest", axis: "x", intersect: false },
        scales: {
          x: { type: "linear", ticks: { maxTicksLimit: 6, maxRotation: 0, font: { size: 11 } } },
          left: { type: "linear", position: "left", ticks: { maxTicksLimit: 5, font: { size: 11 } } },
          right: { type: "linear", position: "right", grid: { drawOnChartArea: false }, ticks: { maxTicksLimit: 5, font: { size: 11 } } },
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 2, font: { size: 11 } } },
          tooltip: { callbacks: { title: (items) => items.length ? new Date(items[0].parsed.x).toLocaleString() : "" } },
        },
      },
    };
  }

  function fillLine(chart, widget, series, payload) {
    const stacked = Boolean(widget.stacked);
    const hasRight = series.some((s) => s.yAxis === "right") || widget.annotations.some((a) => a.yAxis === "right");
    const datasets = series.map((s, i) => ({
      label: s.label,
      data: s.timestamps.map((t, j) => ({ x: t, y: s.values[j] })),
      yAxisID: s.yAxis === "right" ? "right" : "left",
      borderColor: s.color,
      backgroundColor: stacked ? `${s.color}66` : s.color,
      fill: stacked ? (i === 0 ? "origin" : "-1") : false,
      borderWidth: 1.5,
      // Few points read better as dots (the console draws them too); many as a line.
      pointRadius: s.values.length <= 30 ? 2.5 : 0,
      tension: 0,
    }));
    for (const a of widget.annotations) {
      datasets.push({
        label: a.label || String(a.value),
        data: [{ x: payload.start, y: a.value }, { x: payload.end, y: a.value }],
        yAxisID: a.yAxis === "right" ? "right" : "left",
        borderColor: a.color || "#d62728",
        borderDash: [6, 4],
        borderWidth: 1,
        pointRadius: 0,
        fill: false,
      });
    }
    chart.data.datasets = datasets;
    const scales = chart.options.scales;
    const days = (payload.end - payload.start) / 86400000;
    scales.x.min = payload.start;
    scales.x.max = payload.end;
    scales.x.afterBuildTicks = (scale) => {
      scale.ticks = roundTicks(payload.start, payload.end);
    };
    scales.x.ticks.callback = (value) => formatTime(value, days >= 2);
    const side = (name) => series.filter((s) => (s.yAxis === "right") === (name === "right"));
    axis(scales.left, (widget.yAxis || {}).left, stacked, side("left"));
    axis(scales.right, (widget.yAxis || {}).right, stacked, side("right"));
    scales.right.display = hasRight;
    const legend = chart.options.plugins.legend;
    legend.display = widget.legend !== "hidden";
    legend.position = widget.legend === "right" ? "right" : "bottom";
  }

  function axis(scale, settings, stacked, series) {
    const s = settings || {};
    scale.stacked = stacked;
    scale.min = typeof s.min === "number" ? s.min : undefined;
    scale.max = typeof s.max === "number" ? s.max : undefined;
    // Counts, ages and durations never go below zero: start the axis there (as the console
    // does for them) rather than around the data, and give an all-zero line a 0..1 axis.
    const nonNegative = series.every((x) => x.values.every((v) => v >= 0));
    scale.suggestedMin = nonNegative ? 0 : undefined;
    scale.suggestedMax = nonNegative ? 1 : undefined;
    scale.title = { display: Boolean(s.label), text: s.label || "", font: { size: 11 } };
  }

  function fillSummary(chart, kind, series) {
    const latest = series.filter((s) => s.values.length);
    chart.data.labels = latest.map((s) => s.label);
    chart.data.datasets = [{
      data: latest.map((s) => s.values[s.values.length - 1]),
      backgroundColor: latest.map((s) => s.color),
    }];
  }

  function dropChart(index) {
    const entry = charts.get(index);
    if (entry) entry.chart.destroy();
    charts.delete(index);
  }

  // -- formatting -------------------------------------------------------------------------------

  // Round tick steps (about six ticks across the range), so ticks fall on 10:00, 10:30, ...
  const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080].map((m) => m * 60000);

  function roundTicks(start, end) {
    const step = STEPS.find((s) => (end - start) / s <= 6) || STEPS[STEPS.length - 1];
    // Align to local time (a half-hour zone's 10:00 is not a multiple of 30 min since 1970).
    const offset = new Date(start).getTimezoneOffset() * 60000;
    const ticks = [];
    for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) {
      ticks.push({ value: t });
    }
    return ticks;
  }

  function formatTime(ms, withDate) {
    const d = new Date(ms);
    const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
    return withDate ? `${d.getMonth() + 1}/${d.getDate()} ${hm}` : hm;
  }

  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });
  const plain = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });

  function formatNumber(value) {
    return Math.abs(value) >= 10000 ? compact.format(value) : plain.format(value);
  }

  function duration(seconds) {
    for (const [unit, size] of [["w", 604800], ["d", 86400], ["h", 3600], ["m", 60]]) {
      if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
    }
    return `${seconds}s`;
  }

  load();
})();
