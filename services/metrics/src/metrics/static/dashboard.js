/* seminar-ops metrics dashboard: hand-drawn SVG over the JSON API, no dependencies.
 *
 * Every chart element carries the numbers it shows in data-* attributes (and as text),
 * exactly as the API returned them: the page draws, it does not compute. A missing
 * value (null in the API) is written as data-x="null" and shown as "–".
 */
"use strict";

(function () {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const KINDS = ["learning_event", "online_seminar", "pd_workshop"];
  const KIND_LABEL = {
    learning_event: "Learning event",
    online_seminar: "Online seminar",
    pd_workshop: "PD workshop",
  };
  const PROGRAMME_LABEL = { etwinning: "eTwinning", etwinning_plus: "eTwinning Plus" };
  const RATINGS = ["excellent", "very_good", "good", "fair", "poor"];
  const RATING_LABEL = {
    excellent: "Excellent",
    very_good: "Very good",
    good: "Good",
    fair: "Fair",
    poor: "Poor",
  };
  const COLOR = {
    learning_event: "#2f6fde",
    online_seminar: "#13a383",
    pd_workshop: "#e0862b",
    excellent: "#1b7f4b",
    very_good: "#5fb56f",
    good: "#c9c957",
    fair: "#ec9a45",
    poor: "#d2453a",
  };
  const MAX_SERIES_YEARS = 10;
  const LAG_POLL_MS = 5000;
  const REPORT_POLL_MS = 60000;

  // ---- small helpers -----------------------------------------------------------------

  function attr(value) {
    return value === null || value === undefined ? "null" : String(value);
  }

  function pct(value) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(1) + " %";
  }

  function growthText(value) {
    if (value === null || value === undefined) return "–";
    const sign = value > 0 ? "+" : "";
    return sign + Number(value).toFixed(1) + " %";
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of [].concat(children || [])) {
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function legend(keys, labels) {
    return el(
      "div",
      { class: "legend" },
      keys.map((key) => {
        const item = el("span", { "data-legend": key }, labels[key] || key);
        item.style.setProperty("--swatch", COLOR[key] || "#888");
        return item;
      }),
    );
  }

  function empty(container, message) {
    container.replaceChildren(el("p", { class: "empty" }, message));
  }

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  function chartOf(id) {
    return document.querySelector('[data-chart="' + id + '"]');
  }

  // ---- grouped vertical bars ------------------------------------------------------------

  /* groups: [{label, bars: [{key, value, text, sub, subClass, data}]}] */
  function groupedBars(groups, options) {
    const width = options.width || 720;
    const height = options.height || 260;
    const top = 28;
    const bottom = 40;
    const left = 44;
    const plotH = height - top - bottom;
    const max = Math.max(options.max || 0, 1, ...groups.flatMap((g) => g.bars.map((b) => b.value || 0)));
    const svg = svgEl("svg", {
      viewBox: "0 0 " + width + " " + height,
      role: "img",
      "aria-label": options.label,
    });
    svg.append(svgEl("line", { class: "axis", x1: left, y1: top + plotH, x2: width - 8, y2: top + plotH }));
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plotH - plotH * fraction;
      svg.append(svgEl("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "muted" },
        options.axis(max * fraction)));
    }
    const groupW = (width - left - 8) / Math.max(groups.length, 1);
    groups.forEach((group, gi) => {
      const x0 = left + gi * groupW;
      const barW = Math.min(56, (groupW - 16) / Math.max(group.bars.length, 1));
      const startX = x0 + (groupW - barW * group.bars.length) / 2;
      const g = svgEl("g", { class: "group", "data-group": group.label });
      group.bars.forEach((bar, bi) => {
        const value = bar.value || 0;
        const h = plotH * (value / max);
        const x = startX + bi * barW;
        const y = top + plotH - h;
        const node = svgEl("g", { class: "bar" });
        for (const [key, v] of Object.entries(bar.data)) node.setAttribute("data-" + key, attr(v));
        const rect = svgEl("rect", {
          x: x + 2, y: y, width: barW - 4, height: Math.max(h, 0.5), fill: COLOR[bar.key] || "#888",
        });
        rect.append(svgEl("title", {}, bar.title));
        node.append(rect);
        node.append(svgEl("text", { class: "value", x: x + barW / 2, y: y - 4, "text-anchor": "middle" }, bar.text));
        if (bar.sub !== undefined) {
          node.append(svgEl("text", {
            class: "growth " + (bar.subClass || "muted"), x: x + barW / 2, y: y - 16, "text-anchor": "middle",
          }, bar.sub));
        }
        g.append(node);
      });
      g.append(svgEl("text", { x: x0 + groupW / 2, y: height - bottom + 18, "text-anchor": "middle" }, group.label));
      svg.append(g);
    });
    return svg;
  }

  // ---- charts ------------------------------------------------------------------------------

  function drawParticipantsByYear(series) {
    const container = chartOf("participants-by-year");
    const years = series.years.filter((y) => y.total.participants > 0 || y.total.previous_year_participants > 0);
    if (!years.length) return empty(container, "No participants yet.");
    const kinds = KINDS.filter((k) => years.some((y) => y.by_kind.some((r) => r.kind === k)));
    const groups = years.map((y) => ({
      label: String(y.year) + " · " + y.total.participants,
      // Only what the API has for the year: a kind without a row gets no bar.
      bars: kinds.filter((kind) => y.by_kind.some((r) => r.kind === kind)).map((kind) => {
        const row = y.by_kind.find((r) => r.kind === kind);
        return {
          key: kind,
          value: row.participants,
          text: String(row.participants),
          sub: growthText(row.growth_pct),
          subClass: row.growth_pct === null ? "muted" : row.growth_pct >= 0 ? "growth-up" : "growth-down",
          title: KIND_LABEL[kind] + " " + y.year + ": " + row.participants + " participants, growth " + growthText(row.growth_pct),
          data: {
            year: y.year,
            kind: kind,
            participants: row.participants,
            "previous-year-participants": row.previous_year_participants,
            growth: row.growth_pct,
          },
        };
      }),
    }));
    const chart = groupedBars(groups, { label: "Participants by kind and year", axis: (v) => String(Math.round(v)) });
    const totals = el("div", { class: "legend" }, years.map((y) =>
      el("span", {
        "data-total-year": String(y.year),
        "data-participants": attr(y.total.participants),
        "data-growth": attr(y.total.growth_pct),
      }, y.year + ": " + y.total.participants + " (" + growthText(y.total.growth_pct) + ")")));
    container.replaceChildren(chart, legend(kinds, KIND_LABEL), totals);
  }

  function drawResponseRates(series) {
    const container = chartOf("response-rates");
    const years = series.years.filter((y) => y.total.participants > 0);
    if (!years.length) return empty(container, "No participants yet.");
    const kinds = KINDS.filter((k) => years.some((y) => y.by_kind.some((r) => r.kind === k && r.participants > 0)));
    const groups = years.map((y) => ({
      label: String(y.year) + " · " + pct(y.total.response_rate_pct),
      bars: kinds.filter((kind) => y.by_kind.some((r) => r.kind === kind && r.participants > 0)).map((kind) => {
        const row = y.by_kind.find((r) => r.kind === kind);
        return {
          key: kind,
          value: row.response_rate_pct || 0,
          text: pct(row.response_rate_pct),
          title: KIND_LABEL[kind] + " " + y.year + ": " + row.responses + " of " + row.participants,
          data: {
            year: y.year,
            kind: kind,
            "response-rate": row.response_rate_pct,
            responses: row.responses,
            participants: row.participants,
          },
        };
      }),
    }));
    container.replaceChildren(
      groupedBars(groups, {
        label: "Response rates by kind and year", axis: (v) => Math.round(v) + "%", max: 100, width: 420, height: 240,
      }),
      legend(kinds, KIND_LABEL),
    );
  }

  function drawParticipation(report) {
    const container = chartOf("participation");
    if (!report.rows.length) return empty(container, "No participants in " + report.year + " or the year before.");
    const max = Math.max(1, ...report.rows.map((r) => Math.max(r.participants, r.previous_year_participants)));
    const rowH = 42;
    const width = 420;
    const barMax = width - 120;
    const svg = svgEl("svg", { viewBox: "0 0 " + width + " " + (rowH * report.rows.length + 8), role: "img",
      "aria-label": "Participation " + report.year });
    report.rows.forEach((row, i) => {
      const y = 4 + i * rowH;
      const g = svgEl("g", {
        class: "participation-row",
        "data-kind": row.kind,
        "data-programme": row.programme,
        "data-participants": attr(row.participants),
        "data-previous-year-participants": attr(row.previous_year_participants),
        "data-growth": attr(row.growth_pct),
      });
      const scale = barMax / max;
      g.append(svgEl("text", { x: 0, y: y + 11 }, KIND_LABEL[row.kind] + " · " + PROGRAMME_LABEL[row.programme]));
      g.append(svgEl("rect", { x: 0, y: y + 15, height: 12, width: Math.max(row.participants * scale, 0.5), fill: COLOR[row.kind] }));
      g.append(svgEl("rect", { x: 0, y: y + 29, height: 5, width: Math.max(row.previous_year_participants * scale, 0.5), fill: "#b8bfcc" }));
      g.append(svgEl("text", { class: "value", x: barMax + 8, y: y + 25 }, String(row.participants)));
      g.append(svgEl("text", { class: "muted", x: barMax + 8, y: y + 37 }, "prev " + row.previous_year_participants));
      g.append(svgEl("text", { class: row.growth_pct === null ? "muted" : row.growth_pct >= 0 ? "growth-up" : "growth-down",
        x: barMax + 56, y: y + 25 }, growthText(row.growth_pct)));
      svg.append(g);
    });
    const total = el("p", { "data-total-participants": attr(report.total_participants) },
      "Total " + report.year + ": " + report.total_participants + " participants");
    container.replaceChildren(svg, total);
  }

  function drawSatisfaction(report) {
    const container = chartOf("satisfaction");
    if (!report.rows.length) return empty(container, "No participants or responses in " + report.year + ".");
    const rowH = 40;
    const width = 420;
    const labelW = 168;
    const barW = 180;
    const svg = svgEl("svg", { viewBox: "0 0 " + width + " " + (rowH * report.rows.length + 8), role: "img",
      "aria-label": "Satisfaction " + report.year });
    report.rows.forEach((row, i) => {
      const y = 4 + i * rowH;
      const g = svgEl("g", {
        class: "satisfaction-row",
        "data-kind": row.kind,
        "data-programme": row.programme,
        "data-participants": attr(row.participants),
        "data-responses": attr(row.responses),
        "data-response-rate": attr(row.response_rate_pct),
        "data-excellent-or-very-good": attr(row.excellent_or_very_good_pct),
      });
      g.append(svgEl("text", { x: 0, y: y + 14 }, KIND_LABEL[row.kind] + " · " + PROGRAMME_LABEL[row.programme]));
      g.append(svgEl("text", { class: "muted", x: 0, y: y + 28 },
        row.responses + " of " + row.participants + " answered (" + pct(row.response_rate_pct) + ")"));
      let x = labelW;
      for (const rating of RATINGS) {
        const count = row.ratings[rating];
        const w = row.responses ? (barW * count) / row.responses : 0;
        const seg = svgEl("rect", { class: "rating", "data-rating": rating, "data-count": attr(count),
          x: x, y: y + 4, width: Math.max(w, 0), height: 16, fill: COLOR[rating] });
        seg.append(svgEl("title", {}, RATING_LABEL[rating] + ": " + count));
        g.append(seg);
        x += w;
      }
      g.append(svgEl("text", { class: "value", x: labelW + barW + 8, y: y + 16 }, pct(row.excellent_or_very_good_pct)));
      svg.append(g);
    });
    const t = report.total;
    const total = el("p", {
      class: "satisfaction-total",
      "data-participants": attr(t.participants),
      "data-responses": attr(t.responses),
      "data-response-rate": attr(t.response_rate_pct),
      "data-excellent-or-very-good": attr(t.excellent_or_very_good_pct),
    }, "Total: " + t.responses + " responses from " + t.participants + " participants (" + pct(t.response_rate_pct) +
      "), excellent or very good " + pct(t.excellent_or_very_good_pct));
    container.replaceChildren(svg, legend(RATINGS, RATING_LABEL), total);
  }

  const lagHistory = [];

  function drawLag(status) {
    const container = chartOf("lag");
    lagHistory.push(status.total);
    if (lagHistory.length > 60) lagHistory.shift();
    const width = 420;
    const height = 60;
    const max = Math.max(1, ...lagHistory);
    const step = width / Math.max(lagHistory.length - 1, 1);
    const points = lagHistory.map((v, i) => (i * step).toFixed(1) + "," + (height - 4 - ((height - 8) * v) / max).toFixed(1));
    const spark = svgEl("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-label": "Lag over time" });
    spark.append(svgEl("polyline", { points: points.join(" "), fill: "none", stroke: COLOR.online_seminar, "stroke-width": 2 }));
    const total = el("div", { class: "lag-total", id: "lag-total", "data-total": attr(status.total) },
      String(status.total) + " records behind");
    const table = el("table", {}, [
      el("thead", {}, el("tr", {}, [el("th", {}, "topic"), el("th", {}, "partition"), el("th", {}, "lag")])),
      el("tbody", {}, status.partitions.map((p) =>
        el("tr", { class: "lag-partition", "data-topic": p.topic, "data-partition": attr(p.partition), "data-lag": attr(p.lag) },
          [el("td", {}, p.topic), el("td", {}, String(p.partition)), el("td", {}, String(p.lag))]))),
    ]);
    container.replaceChildren(total, spark, table);
  }

  // ---- loading -----------------------------------------------------------------------------

  function setStatus(state, text) {
    const node = document.getElementById("status");
    node.dataset.state = state;
    node.textContent = text;
  }

  function chosenYear(years) {
    const asked = Number(new URLSearchParams(window.location.search).get("year"));
    if (asked) return asked;
    return years.length ? years[years.length - 1] : new Date().getFullYear();
  }

  function fillPicker(years, year) {
    const picker = document.getElementById("year-picker");
    const options = Array.from(new Set(years.concat([year]))).sort();
    picker.replaceChildren(...options.map((y) => {
      const option = el("option", { value: String(y) }, String(y));
      option.selected = y === year;
      return option;
    }));
    picker.onchange = () => {
      const url = new URL(window.location.href);
      url.searchParams.set("year", picker.value);
      window.location.assign(url.toString());
    };
  }

  async function loadReports() {
    const { years } = await getJSON("/v1/reports/years");
    const year = chosenYear(years);
    fillPicker(years, year);
    for (const span of document.querySelectorAll("h2 .year")) span.textContent = String(year);
    const first = Math.max(years.length ? Math.min(years[0], year) : year, year - MAX_SERIES_YEARS + 1);
    const last = Math.max(year, years.length ? years[years.length - 1] : year);
    const [participation, satisfaction, series] = await Promise.all([
      getJSON("/v1/reports/participation?year=" + year),
      getJSON("/v1/reports/satisfaction?year=" + year),
      getJSON("/v1/reports/series?from=" + first + "&to=" + last),
    ]);
    document.body.dataset.year = String(year);
    drawParticipantsByYear(series);
    drawParticipation(participation);
    drawSatisfaction(satisfaction);
    drawResponseRates(series);
  }

  async function loadLag() {
    drawLag(await getJSON("/v1/status/lag"));
  }

  async function start() {
    try {
      await Promise.all([loadReports(), loadLag()]);
      setStatus("ok", "updated " + new Date().toLocaleTimeString());
      document.body.dataset.ready = "true";
    } catch (error) {
      setStatus("error", String(error && error.message ? error.message : error));
      document.body.dataset.ready = "error";
    }
    window.setInterval(() => loadLag().catch(() => setStatus("error", "lag unavailable")), LAG_POLL_MS);
    window.setInterval(() => loadReports().catch(() => setStatus("error", "reports unavailable")), REPORT_POLL_MS);
  }

  start();
})();
