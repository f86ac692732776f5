/* seminar-ops metrics dashboard: Chart.js (vendored) over the JSON reports.
 *
 * The page draws, it does not compute: every number it shows is one the API returned,
 * and every table row carries those numbers in data-* attributes exactly as served (a
 * null is written "null" and shown as "–"), so a test can hold the page against the API.
 * Each card is in one state at a time (data-state: loading, ready, empty or error) and
 * says so in words.
 */
"use strict";

(function () {
  const KIND_LABEL = {
    learning_event: "Learning event",
    online_seminar: "Online seminar",
    pd_workshop: "PD workshop",
  };
  const PROGRAMME_LABEL = { etwinning: "eTwinning", etwinning_plus: "eTwinning Plus" };
  const RATINGS = ["excellent", "very_good", "good", "fair", "poor"];
  const RATING_LABEL = { excellent: "Excellent", very_good: "Very good", good: "Good", fair: "Fair", poor: "Poor" };
  const FUNNEL_STAGES = [
    "requested", "confirmed", "waitlisted", "promoted", "cancelled", "rejected", "attended", "evaluated",
    "registered_again", "offers_made", "offers_accepted", "offers_declined", "offers_expired", "not_eligible",
  ];
  // "offers_made" -> "Offers made"
  const stageLabel = (s) => s[0].toUpperCase() + s.slice(1).replaceAll("_", " ");
  const COLOR = {
    learning_event: "#2f6fde",
    online_seminar: "#13a383",
    pd_workshop: "#e0862b",
    excellent: "#1b7f4b",
    very_good: "#5fb56f",
    good: "#c9c957",
    fair: "#ec9a45",
    poor: "#d2453a",
    previous: "#b8bfcc",
    bars: "#2f6fde",
  };
  const MAX_SERIES_YEARS = 10;
  const MAX_RANKED = 15;
  const LABEL_CHARS = 28;
  const LAG_POLL_MS = 5000;
  const REPORT_POLL_MS = 60000;

  const numberFormat = new Intl.NumberFormat("en");
  const plurals = new Intl.PluralRules("en");
  const regionNames = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(["en"], { type: "region" }) : null;
  const charts = {};

  // ---- words and numbers ---------------------------------------------------------------

  /* "participant" for 1, "participants" for 0, 2, 1,204. */
  function noun(n, singular, plural) {
    return plurals.select(n) === "one" ? singular : plural || singular + "s";
  }

  /* "1 participant", "2 participants", "1,204 participants". */
  function count(n, singular, plural) {
    return numberFormat.format(n) + " " + noun(n, singular, plural);
  }

  function num(value) {
    return value === null || value === undefined ? "–" : numberFormat.format(value);
  }

  function pct(value) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(1) + " %";
  }

  function signedPct(value) {
    if (value === null || value === undefined) return "–";
    return (value > 0 ? "+" : "") + Number(value).toFixed(1) + " %";
  }

  function attr(value) {
    return value === null || value === undefined ? "null" : String(value);
  }

  function groupLabel(row) {
    return KIND_LABEL[row.kind] + " · " + PROGRAMME_LABEL[row.programme];
  }

  /* The same on two lines, for a chart axis (narrow on a phone). */
  function groupLines(row) {
    return [KIND_LABEL[row.kind], PROGRAMME_LABEL[row.programme]];
  }

  function countryName(code) {
    if (!code) return "Unknown";
    try {
      const name = regionNames && regionNames.of(code);
      return name && name !== code ? name + " (" + code + ")" : code;
    } catch (error) {
      return code;
    }
  }

  /* Long category labels are shortened on the axis, never clipped mid-letter; the
   * tooltip and the table keep them whole. */
  function shorten(label) {
    return label.length > LABEL_CHARS ? label.slice(0, LABEL_CHARS - 1) + "…" : label;
  }

  // ---- DOM -----------------------------------------------------------------------------

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    for (const child of [].concat(children === undefined ? [] : children)) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function dataAttrs(values) {
    const out = {};
    for (const [key, value] of Object.entries(values)) out["data-" + key] = attr(value);
    return out;
  }

  /* columns: [{title, text?: true}]; rows: [{data: {...}, cells: [...], cls?}] */
  function table(columns, rows, foot) {
    const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", c.text ? { class: "text" } : {}, c.title))));
    const body = el("tbody", {}, rows.map((r) =>
      el("tr", Object.assign({ class: r.cls || "" }, dataAttrs(r.data)), r.cells.map((cell, i) =>
        el("td", columns[i].text ? { class: "text " + (columns[i].cls || "") } : {}, cell)))));
    const parts = [head, body];
    if (foot) {
      parts.push(el("tfoot", {}, el("tr", Object.assign({ class: foot.cls || "" }, dataAttrs(foot.data)),
        foot.cells.map((cell, i) => el("td", columns[i].text ? { class: "text" } : {}, cell)))));
    }
    return el("table", {}, parts);
  }

  function card(id) {
    return document.getElementById(id);
  }

  function setState(id, state, message) {
    const node = card(id);
    node.dataset.state = state;
    const text = node.querySelector(".state");
    if (text) text.textContent = message || "";
  }

  function fillTable(name, node) {
    document.querySelector('[data-table="' + name + '"]').replaceChildren(node);
  }

  function setCsv(name, path) {
    document.querySelector('[data-csv="' + name + '"]').setAttribute("href", path);
  }

  // ---- charts --------------------------------------------------------------------------

  function draw(canvasId, config) {
    if (charts[canvasId]) charts[canvasId].destroy();
    const base = {
      responsive: true,
      maintainAspectRatio: false,
      // Drawn once, at once: nothing moves while someone reads, and screenshots and
      // tests see the final picture.
      animation: false,
      plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } },
    };
    config.options = Object.assign(base, config.options || {});
    charts[canvasId] = new window.Chart(document.getElementById(canvasId), config);
  }

  function countAxis(extra) {
    // Counts are whole: no tick at 1.5 labelled "2".
    return Object.assign({ beginAtZero: true, ticks: { precision: 0 } }, extra || {});
  }

  function categoryAxis() {
    return {
      ticks: {
        autoSkip: false,
        callback: function (value) {
          const label = this.getLabelForValue(value);
          return Array.isArray(label) ? label.map(shorten) : shorten(label);
        },
      },
    };
  }

  /* Horizontal bars keep one thickness however many rows there are: the chart grows
   * with its rows instead of stretching one bar over the whole card. */
  function fitRows(canvasId, rows, perRow) {
    const box = document.getElementById(canvasId).parentElement;
    box.style.height = Math.max(140, 56 + rows * (perRow || 30)) + "px";
  }

  function rankedBars(canvasId, labels, values, label, color) {
    fitRows(canvasId, labels.length);
    draw(canvasId, {
      type: "bar",
      data: { labels: labels, datasets: [{ label: label, data: values, backgroundColor: color || COLOR.bars, maxBarThickness: 22 }] },
      options: {
        indexAxis: "y",
        scales: { x: countAxis(), y: categoryAxis() },
        plugins: { legend: { display: false }, tooltip: { callbacks: { title: (items) => items[0].label } } },
      },
    });
  }

  // ---- views ---------------------------------------------------------------------------

  function drawKpis(year, series, satisfaction, seminars) {
    const node = card("kpis");
    const total = (series.years.find((y) => y.year === year) || { total: null }).total;
    if (!total) return setState("kpis", "empty", "Nothing to report for " + year + ".");
    const held = seminars.rows.filter((s) => s.status !== "cancelled").length;
    const t = satisfaction.total;
    const growth = total.growth_pct;
    const items = [
      { key: "participants", n: total.participants, value: num(total.participants), label: noun(total.participants, "participant") + " in " + year,
        delta: growth === null ? "none in " + (year - 1) : signedPct(growth) + " on " + (year - 1), up: growth === null ? null : growth >= 0 },
      { key: "seminars", n: held, value: num(held), label: noun(held, "seminar") + " held or planned" },
      { key: "responses", n: t.responses, value: num(t.responses), label: noun(t.responses, "evaluation"),
        delta: pct(t.response_rate_pct) + " response rate" },
      { key: "excellent-or-very-good", n: t.excellent_or_very_good_pct, value: pct(t.excellent_or_very_good_pct), label: "rated excellent or very good" },
    ];
    node.replaceChildren(...items.map((k) => el("div", { class: "kpi", "data-kpi": k.key, "data-value": attr(k.n) }, [
      el("span", { class: "value" }, k.value),
      el("span", { class: "label" }, k.label),
      k.delta ? el("span", { class: "delta " + (k.up === true ? "up" : k.up === false ? "down" : "") }, k.delta) : "",
    ])));
    node.dataset.state = "ready";
  }

  function drawSeries(series) {
    const years = series.years;
    setCsv("series", "/v1/reports/series.csv?from=" + series.from + "&to=" + series.to);
    if (!years.some((y) => y.total.participants > 0)) return setState("years-card", "empty", "No participants in any year yet.");
    const kinds = Object.keys(KIND_LABEL).filter((k) => years.some((y) => y.by_kind.some((r) => r.kind === k)));
    const labels = years.map((y) => String(y.year));
    draw("chart-years", {
      type: "bar",
      data: {
        labels: labels,
        datasets: kinds.map((kind) => ({
          label: KIND_LABEL[kind],
          backgroundColor: COLOR[kind],
          data: years.map((y) => (y.by_kind.find((r) => r.kind === kind) || { participants: 0 }).participants),
        })),
      },
      options: {
        scales: { x: { stacked: true }, y: countAxis({ stacked: true, title: { display: true, text: "participants" } }) },
        plugins: { title: { display: true, text: "Participants per year" } },
      },
    });
    draw("chart-rates", {
      type: "line",
      data: {
        labels: labels,
        datasets: [
          { label: "Response rate", borderColor: COLOR.bars, backgroundColor: COLOR.bars, data: years.map((y) => y.total.response_rate_pct) },
          { label: "Excellent or very good", borderColor: COLOR.excellent, backgroundColor: COLOR.excellent, data: years.map((y) => y.total.excellent_or_very_good_pct) },
        ],
      },
      options: {
        spanGaps: true,
        scales: { y: { min: 0, max: 100, ticks: { callback: (v) => v + " %" } } },
        plugins: { title: { display: true, text: "Evaluations per year (%)" } },
      },
    });
    const columns = [{ title: "Year", text: true }, { title: "Participants" }, { title: "Growth" }, { title: "Responses" },
      { title: "Response rate" }, { title: "Excellent or very good" }];
    fillTable("series", table(columns, years.map((y) => ({
      cls: "series-row",
      data: {
        year: y.year, participants: y.total.participants, growth: y.total.growth_pct, responses: y.total.responses,
        "response-rate": y.total.response_rate_pct, "excellent-or-very-good": y.total.excellent_or_very_good_pct,
      },
      cells: [String(y.year), num(y.total.participants), signedPct(y.total.growth_pct), num(y.total.responses),
        pct(y.total.response_rate_pct), pct(y.total.excellent_or_very_good_pct)],
    }))));
    setState("years-card", "ready");
  }

  function drawFunnel(report) {
    setCsv("funnel", "/v1/reports/funnel.csv?year=" + report.year);
    const t = report.total;
    if (!t.requested) return setState("funnel-card", "empty", "No registrations for " + report.year + " seminars yet.");
    rankedBars("chart-funnel", FUNNEL_STAGES.map(stageLabel), FUNNEL_STAGES.map((s) => t[s]), "registrations");
    const columns = [{ title: "Stage", text: true }, { title: "Registrations" }];
    fillTable("funnel", table(columns, FUNNEL_STAGES.map((s) => ({
      cls: "funnel-stage",
      data: { stage: s, count: t[s] },
      cells: [stageLabel(s), num(t[s])],
    }))));
    setState("funnel-card", "ready");
  }

  function drawParticipation(report) {
    setCsv("participation", "/v1/reports/participation.csv?year=" + report.year);
    if (!report.rows.length) return setState("participation-card", "empty", "No participants in " + report.year + " or the year before.");
    fitRows("chart-participation", report.rows.length, 52);
    draw("chart-participation", {
      type: "bar",
      data: {
        labels: report.rows.map(groupLines),
        datasets: [
          { label: String(report.year), data: report.rows.map((r) => r.participants), backgroundColor: report.rows.map((r) => COLOR[r.kind]), maxBarThickness: 20 },
          { label: String(report.year - 1), data: report.rows.map((r) => r.previous_year_participants), backgroundColor: COLOR.previous, maxBarThickness: 20 },
        ],
      },
      options: { indexAxis: "y", scales: { x: countAxis(), y: categoryAxis() }, plugins: { legend: { display: false } } },
    });
    const columns = [{ title: "Kind · programme", text: true }, { title: String(report.year) }, { title: String(report.year - 1) }, { title: "Growth" }];
    fillTable("participation", table(columns, report.rows.map((r) => ({
      cls: "participation-row",
      data: { kind: r.kind, programme: r.programme, participants: r.participants, "previous-year-participants": r.previous_year_participants, growth: r.growth_pct },
      cells: [groupLabel(r), num(r.participants), num(r.previous_year_participants), signedPct(r.growth_pct)],
    })), {
      cls: "participation-total",
      data: { participants: report.total_participants },
      cells: ["Total", count(report.total_participants, "participant"), "", ""],
    }));
    setState("participation-card", "ready");
  }

  function drawSatisfaction(report) {
    setCsv("satisfaction", "/v1/reports/satisfaction.csv?year=" + report.year);
    if (!report.rows.length) return setState("satisfaction-card", "empty", "No participants or evaluations in " + report.year + ".");
    fitRows("chart-satisfaction", report.rows.length, 48);
    draw("chart-satisfaction", {
      type: "bar",
      data: {
        labels: report.rows.map(groupLines),
        datasets: RATINGS.map((rating) => ({
          label: RATING_LABEL[rating], backgroundColor: COLOR[rating], data: report.rows.map((r) => r.ratings[rating]), maxBarThickness: 26,
        })),
      },
      options: { indexAxis: "y", scales: { x: countAxis({ stacked: true }), y: Object.assign(categoryAxis(), { stacked: true }) } },
    });
    const columns = [{ title: "Kind · programme", text: true }, { title: "Participants" }, { title: "Responses" }, { title: "Response rate" },
      { title: "Excellent or very good" }];
    const t = report.total;
    fillTable("satisfaction", table(columns, report.rows.map((r) => ({
      cls: "satisfaction-row",
      data: {
        kind: r.kind, programme: r.programme, participants: r.participants, responses: r.responses, "response-rate": r.response_rate_pct,
        "excellent-or-very-good": r.excellent_or_very_good_pct,
      },
      cells: [groupLabel(r), num(r.participants), num(r.responses), pct(r.response_rate_pct), pct(r.excellent_or_very_good_pct)],
    })), {
      cls: "satisfaction-total",
      data: { participants: t.participants, responses: t.responses, "response-rate": t.response_rate_pct, "excellent-or-very-good": t.excellent_or_very_good_pct },
      cells: ["Total", num(t.participants), num(t.responses), pct(t.response_rate_pct), pct(t.excellent_or_very_good_pct)],
    }));
    setState("satisfaction-card", "ready");
  }

  function drawCountries(report) {
    setCsv("countries", "/v1/reports/countries.csv?year=" + report.year);
    if (!report.rows.length) return setState("countries-card", "empty", "No participants in " + report.year + ".");
    // Most participants first; on a tie, known countries by code, the unknown last.
    const ranked = report.rows.slice().sort((a, b) => b.participants - a.participants ||
      (a.country === null) - (b.country === null) || String(a.country).localeCompare(String(b.country)));
    const top = ranked.slice(0, MAX_RANKED);
    rankedBars("chart-countries", top.map((r) => countryName(r.country)), top.map((r) => r.participants), "participants");
    const columns = [{ title: "Country", text: true }, { title: "Participants" }, { title: "Teachers" }];
    fillTable("countries", table(columns, ranked.map((r) => ({
      cls: "country-row",
      data: { country: r.country, participants: r.participants, teachers: r.teachers },
      cells: [countryName(r.country), num(r.participants), num(r.teachers)],
    }))));
    setState("countries-card", "ready");
  }

  function drawSchools(report) {
    setCsv("schools", "/v1/reports/schools.csv?year=" + report.year);
    const hosts = report.rows.filter((r) => r.hosted_open_events > 0)
      .sort((a, b) => b.hosted_open_events - a.hosted_open_events || a.school_id.localeCompare(b.school_id));
    if (!hosts.length) return setState("schools-card", "empty", "No school hosted an event open to others in " + report.year + ".");
    const top = hosts.slice(0, MAX_RANKED);
    rankedBars("chart-schools", top.map((r) => r.school_id), top.map((r) => r.hosted_open_events), "open events hosted", COLOR.online_seminar);
    const columns = [{ title: "School", text: true }, { title: "Open events hosted" }, { title: "All hosted" }, { title: "Teachers taking part" }];
    fillTable("schools", table(columns, hosts.map((r) => ({
      cls: "school-row",
      data: { school: r.school_id, "hosted-open-events": r.hosted_open_events, "hosted-events": r.hosted_events, teachers: r.teachers },
      cells: [r.school_id, num(r.hosted_open_events), num(r.hosted_events), num(r.teachers)],
    }))));
    setState("schools-card", "ready");
  }

  function meter(value) {
    const box = el("span", { class: "meter" + (value !== null && value >= 100 ? " full" : "") }, el("span"));
    // CSSOM, not a style attribute: the page's CSP allows no inline styles.
    box.firstChild.style.width = Math.min(100, value || 0) + "%";
    return box;
  }

  function drawSeminars(report) {
    setCsv("seminars", "/v1/reports/seminars.csv?year=" + report.year);
    if (!report.rows.length) return setState("seminars-card", "empty", "No seminars in " + report.year + ".");
    const columns = [{ title: "Seminar", text: true, cls: "title" }, { title: "Kind", text: true }, { title: "Status", text: true },
      { title: "Capacity" }, { title: "Confirmed" }, { title: "Fill rate" }, { title: "Waiting list" }, { title: "Participants" },
      { title: "Response rate" }];
    fillTable("seminars", table(columns, report.rows.map((r) => ({
      cls: "seminar-row",
      data: {
        seminar: r.seminar_id, capacity: r.capacity, confirmed: r.confirmed, "fill-rate": r.fill_rate_pct, waitlisted: r.waitlisted,
        attended: r.attended, evaluated: r.evaluated, "response-rate": r.response_rate_pct,
      },
      cells: [r.title || r.seminar_id, r.kind ? KIND_LABEL[r.kind] + (r.programme ? " · " + PROGRAMME_LABEL[r.programme] : "") : "–", r.status,
        num(r.capacity), num(r.confirmed), el("span", {}, [pct(r.fill_rate_pct), meter(r.fill_rate_pct)]), num(r.waitlisted), num(r.attended),
        pct(r.response_rate_pct)],
    }))));
    setState("seminars-card", "ready");
  }

  const lagHistory = [];

  function drawLag(status) {
    lagHistory.push(status.total);
    if (lagHistory.length > 60) lagHistory.shift();
    const total = el("div", { class: "total", id: "lag-total", "data-total": attr(status.total) },
      count(status.total, "event") + " behind");
    const columns = [{ title: "Topic", text: true }, { title: "Partition" }, { title: "Lag" }];
    const partitions = el("details", {}, [el("summary", {}, "Per partition"), table(columns, status.partitions.map((p) => ({
      cls: "lag-partition", data: { topic: p.topic, partition: p.partition, lag: p.lag },
      cells: [p.topic, String(p.partition), num(p.lag)],
    })))]);
    document.querySelector('[data-table="lag"]').replaceChildren(total, partitions);
    setState("lag-card", "ready");
  }

  // ---- loading -------------------------------------------------------------------------

  async function getJSON(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response.json();
  }

  function setStatus(state, text) {
    const node = document.getElementById("status");
    node.dataset.state = state;
    node.textContent = text;
  }

  function chosenYear(known) {
    const asked = Number(new URLSearchParams(window.location.search).get("year"));
    if (Number.isInteger(asked) && asked > 0) return asked;
    return known.latest_with_data || new Date().getFullYear();
  }

  function fillPicker(years, year) {
    const picker = document.getElementById("year-picker");
    const options = Array.from(new Set(years.concat([year]))).sort().reverse();
    picker.replaceChildren(...options.map((y) => {
      const option = el("option", { value: String(y) }, String(y));
      option.selected = y === year;
      return option;
    }));
    picker.disabled = false;
    picker.onchange = () => {
      const url = new URL(window.location.href);
      url.searchParams.set("year", picker.value);
      window.location.assign(url.toString());
    };
  }

  const VIEWS = [
    ["kpis", null],
    ["years-card", drawSeries],
    ["funnel-card", drawFunnel],
    ["participation-card", drawParticipation],
    ["satisfaction-card", drawSatisfaction],
    ["countries-card", drawCountries],
    ["schools-card", drawSchools],
    ["seminars-card", drawSeminars],
  ];

  async function loadReports() {
    const known = await getJSON("/v1/reports/years");
    const year = chosenYear(known);
    fillPicker(known.years, year);
    document.body.dataset.year = String(year);
    for (const span of document.querySelectorAll("h2 .year")) span.textContent = String(year);
    if (!known.years.length) {
      for (const [id] of VIEWS) setState(id, "empty", "No seminars yet: nothing to report. Load some with `make demo`.");
      return;
    }
    const withData = known.with_participants.length ? known.with_participants : known.years;
    const last = Math.max(year, Math.min(Math.max(...withData), Math.max(...known.years)));
    const first = Math.max(Math.min(...withData, year), last - MAX_SERIES_YEARS + 1);
    const q = "?year=" + year;
    const [series, funnel, participation, satisfaction, countries, schools, seminars] = await Promise.all([
      getJSON("/v1/reports/series?from=" + first + "&to=" + last),
      getJSON("/v1/reports/funnel" + q),
      getJSON("/v1/reports/participation" + q),
      getJSON("/v1/reports/satisfaction" + q),
      getJSON("/v1/reports/countries" + q),
      getJSON("/v1/reports/schools" + q),
      getJSON("/v1/reports/seminars" + q),
    ]);
    drawKpis(year, series, satisfaction, seminars);
    drawSeries(series);
    drawFunnel(funnel);
    drawParticipation(participation);
    drawSatisfaction(satisfaction);
    drawCountries(countries);
    drawSchools(schools);
    drawSeminars(seminars);
  }

  async function loadLag() {
    drawLag(await getJSON("/v1/status/lag"));
  }

  function failed(ids, error) {
    const message = "Could not load: " + (error && error.message ? error.message : error);
    for (const id of ids) setState(id, "error", message);
    setStatus("error", message);
  }

  async function start() {
    if (typeof window.Chart !== "function") {
      failed(VIEWS.map(([id]) => id), "the chart library did not load");
      document.body.dataset.ready = "error";
      return;
    }
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.color = "#1d2433";
    const reports = loadReports().catch((error) => { failed(VIEWS.map(([id]) => id), error); throw error; });
    const lag = loadLag().catch((error) => { failed(["lag-card"], error); throw error; });
    try {
      await Promise.all([reports, lag]);
      setStatus("ok", "Updated " + new Date().toLocaleTimeString());
      document.body.dataset.ready = "true";
    } catch (error) {
      document.body.dataset.ready = "error";
    }
    window.setInterval(() => loadLag().catch(() => setStatus("error", "Lag unavailable")), LAG_POLL_MS);
    window.setInterval(() => loadReports()
      .then(() => setStatus("ok", "Updated " + new Date().toLocaleTimeString()))
      .catch(() => setStatus("error", "Reports unavailable")), REPORT_POLL_MS);
  }

  start();
})();
