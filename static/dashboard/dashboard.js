/* energyarb operations dashboard.
 *
 * Data: the first document is embedded by the page (json_script "dashboard-data"); the same document is fetched
 * again from config.urls.data every config.refresh_seconds. Every number on the page comes from it (the Scenarios
 * panel too: each scenario's latest stored run), plus the status of a run while AI Optimize works (config.urls.run). Actions: Initialize and AI Optimize POST to the
 * original product's endpoints; the SLA panel POSTs to the customer API (quotes, then contracts).
 * Libraries: Leaflet (django-leaflet's static files), Chart.js and topojson-client (npm), all served locally.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  let data = JSON.parse(document.getElementById("dashboard-data").textContent);

  const $ = (id) => document.getElementById(id);
  const fmt = (value, digits = 0) =>
    value === null || value === undefined || Number.isNaN(value)
      ? "–"
      : Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  const usd = (value, digits = 0) =>
    value === null || value === undefined ? "–" : (value < 0 ? "−$" : "$") + fmt(Math.abs(value), digits);
  const escapeHtml = (text) =>
    String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const hhmm = (iso) => (iso ? new Date(iso).toISOString().slice(11, 16) : "");
  const when = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "–");

  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Toasts -------------------------------------------------------------------------------------------------

  function toast(message, kind = "info", timeoutMs = 6000) {
    const box = el("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, [
      el("span", { text: message }),
      el("button", { type: "button", "aria-label": "Dismiss", text: "×", onclick: () => box.remove() }),
    ]);
    $("toasts").append(box);
    if (timeoutMs) setTimeout(() => box.remove(), timeoutMs);
    return box;
  }

  // HTTP ---------------------------------------------------------------------------------------------------

  class HttpError extends Error {
    constructor(status, body) {
      super(HttpError.describe(status, body));
      this.status = status;
      this.body = body;
    }
    static describe(status, body) {
      if (body && typeof body === "object") {
        if (typeof body.detail === "string") return body.detail;
        const first = Object.entries(body)[0];
        if (first) return `${first[0]}: ${[].concat(first[1]).join(" ")}`;
      }
      return `HTTP ${status}`;
    }
  }

  async function request(url, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRFToken"] = config.csrf_token;
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(url, {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let payload = null;
    const text = await response.text();
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch (_) {
        payload = { detail: text.slice(0, 200) };
      }
    }
    if (!response.ok) throw new HttpError(response.status, payload);
    return payload;
  }

  // Header and metric cards ------------------------------------------------------------------------------

  function renderStatus(status) {
    $("system-status").dataset.state = status.state;
    $("status-label").textContent = status.label;
    $("status-detail").textContent = status.detail;
  }

  function setValue(id, text, unit, negative = false) {
    const node = $(id);
    node.replaceChildren(document.createTextNode(text), unit ? el("span", { class: "unit", text: unit }) : "");
    node.classList.toggle("negative", negative);
  }

  function renderMetrics(metrics, tiers) {
    setValue("m-revenue", usd(metrics.revenue_usd_per_h), "/h");
    setValue("m-profit", usd(metrics.profit_usd_per_h), "/h", (metrics.profit_usd_per_h ?? 0) < 0);
    setValue("m-power", `${fmt(metrics.facility_power_mw, 2)} / ${fmt(metrics.capacity_mw, 1)}`, "MW");
    $("m-power-bar").style.width = `${Math.min(100, metrics.utilization_pct ?? 0)}%`;
    $("m-power-sub").textContent = `${fmt(metrics.utilization_pct, 1)} % of facility capacity · IT ${fmt(metrics.it_power_mw, 2)} MW`;
    setValue("m-pue", fmt(metrics.pue_average, 3), "");
    setValue("m-renewable", fmt(metrics.renewable_share_pct, 1), "%");
    setValue("m-sla", fmt(metrics.sla_committed_kw_total, 0), "kW");
    $("m-sla-tiers").replaceChildren(
      ...tiers.map((tier) => el("li", { text: `${tier.name} ${fmt(tier.committed_kw, 0)} kW` })),
    );
  }

  // Map -----------------------------------------------------------------------------------------------------

  let map = null;
  let markerLayer = null;
  let fitted = false;
  const markers = new Map();

  function pueColour(site) {
    if (site.status === "maintenance") return "#60a5fa";
    if (site.status === "offline") return "#6b7280";
    if (site.pue < 1.15) return "#34d399";
    if (site.pue < 1.35) return "#a3e635";
    if (site.pue < 1.6) return "#fbbf24";
    return "#f87171";
  }

  function markerRadius(site) {
    // Area follows facility power: radius ~ sqrt(kW); an idle site still shows as a small dot.
    return 5 + Math.sqrt(Math.max(site.facility_kw, 0)) / 3;
  }

  function popupHtml(site) {
    const rows = (pairs) =>
      `<table>${pairs.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join("")}</table>`;
    const allocation = site.allocation.map((a) => [a.name.replace(/ \(.*\)$/, ""), `${a.units_running}/${a.units_installed} · ${fmt(a.it_kw, 0)} kW`]);
    const contracts = site.contracts.length
      ? site.contracts.map((c) => [`#${c.contract} ${c.tier} · ${c.customer}`, `${fmt(c.capacity_kw, 0)} kW`])
      : [["none", ""]];
    return `<div class="popup">
      <h3>${escapeHtml(site.name)}</h3>
      <div class="muted">${escapeHtml(site.status_label)} · ${escapeHtml(site.cooling_label)} · local ${escapeHtml(site.local_time)}</div>
      <div class="section">Allocation (units running / installed)</div>${rows(allocation)}
      <div class="section">Power</div>${rows([
        ["Facility", `${fmt(site.facility_kw, 0)} of ${fmt(site.capacity_kw, 0)} kW`],
        ["PUE", fmt(site.pue, 3)],
      ])}
      <div class="section">Prices and money</div>${rows([
        ["Energy", `${fmt(site.energy_price_usd_per_mwh, 2)} USD/MWh`],
        ["Revenue", `${usd(site.revenue_usd_per_h)}/h`],
        ["Profit", `${usd(site.profit_usd_per_h)}/h`],
      ])}
      <div class="section">Weather</div>${rows([
        ["Temperature", site.temperature_c === null ? "no reading" : `${fmt(site.temperature_c, 1)} °C`],
      ])}
      <div class="section">Contracts</div>${rows(contracts)}
    </div>`;
  }

  function unwrapRing(ring) {
    const lons = ring.map(([lon]) => lon);
    if (Math.max(...lons) - Math.min(...lons) <= 180) return ring;
    return ring.map(([lon, lat]) => [lon < 0 ? lon + 360 : lon, lat]);
  }

  function unwrapGeometry(geometry) {
    if (!geometry) return geometry;
    if (geometry.type === "Polygon") return { ...geometry, coordinates: geometry.coordinates.map(unwrapRing) };
    if (geometry.type === "MultiPolygon") {
      return { ...geometry, coordinates: geometry.coordinates.map((polygon) => polygon.map(unwrapRing)) };
    }
    return geometry;
  }

  function initMap() {
    map = L.map("map", {
      center: config.map.center,
      zoom: config.map.zoom,
      minZoom: 0,
      zoomSnap: 0.25,
      worldCopyJump: true,
      attributionControl: Boolean(config.map.tile_url),
      keyboard: true,
    });
    if (config.map.tile_url) {
      L.tileLayer(config.map.tile_url, { maxZoom: 12 }).addTo(map);
    }
    markerLayer = L.layerGroup().addTo(map);
    fetch(config.urls.atlas, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`HTTP ${response.status}`))))
      .then((world) => {
        const countries = topojson.feature(world, world.objects.countries);
        // Antarctica carries no site; rings that cross the antimeridian (Russia, Fiji) are unwrapped past 180°
        // so Leaflet does not draw them as bands across the whole map.
        countries.features = countries.features
          .filter((feature) => feature.id !== "010")
          .map((feature) => ({ ...feature, geometry: unwrapGeometry(feature.geometry) }));
        L.geoJSON(countries, {
          interactive: false,
          style: { color: "#3b5b8c", weight: 0.6, fillColor: "#16294d", fillOpacity: 0.9 },
        }).addTo(map);
        markerLayer.eachLayer((layer) => layer.bringToFront());
      })
      .catch((error) => toast(`Country outlines unavailable: ${error.message}`, "error"));
  }

  function renderMap(sites) {
    const seen = new Set();
    for (const site of sites) {
      seen.add(site.code);
      const style = {
        radius: markerRadius(site),
        color: "#e2e8f0",
        weight: 1,
        fillColor: pueColour(site),
        fillOpacity: 0.85,
        className: `site-marker site-${site.code}`,
      };
      let marker = markers.get(site.code);
      if (!marker) {
        marker = L.circleMarker([site.latitude, site.longitude], style).addTo(markerLayer);
        marker.bindTooltip(site.name);
        markers.set(site.code, marker);
      } else {
        marker.setLatLng([site.latitude, site.longitude]);
        marker.setStyle(style);
        marker.setRadius(style.radius);
      }
      marker.bindPopup(popupHtml(site), { maxWidth: 320, autoPanPadding: [20, 20] });
    }
    for (const [code, marker] of markers) {
      if (!seen.has(code)) {
        markerLayer.removeLayer(marker);
        markers.delete(code);
      }
    }
    if (!fitted && sites.length) {
      map.fitBounds(L.latLngBounds(sites.map((s) => [s.latitude, s.longitude])), { padding: [30, 30], maxZoom: 4 });
      fitted = true;
    }
  }

  function showOnMap(code) {
    const marker = markers.get(code);
    if (!marker) return;
    $("map").scrollIntoView({ block: "center" });
    map.setView(marker.getLatLng(), Math.max(map.getZoom(), 3), { animate: false });
    marker.openPopup();
  }

  // Site cards ----------------------------------------------------------------------------------------------

  function renderSites(sites) {
    const online = sites.filter((s) => s.status === "online").length;
    $("sites-summary").textContent = `${online} of ${sites.length} online`;
    if (!sites.length) {
      $("site-cards").replaceChildren(el("p", { class: "muted", text: "No sites yet: press Initialize." }));
      return;
    }
    $("site-cards").replaceChildren(
      ...sites.map((site) => {
        const mining = site.it_kw ? (site.mining_kw / site.it_kw) * 100 : 0;
        const inference = site.it_kw ? (site.inference_kw / site.it_kw) * 100 : 0;
        const pair = (term, value) => [el("dt", { text: term }), el("dd", { text: value })];
        return el("article", { class: "site-card", "data-site": site.code, "aria-label": site.name }, [
          el("header", {}, [
            el("h3", { text: site.name }),
            el("span", { class: "status", "data-status": site.status, text: site.status_label }),
          ]),
          el("dl", {}, [
            ...pair("Utilization", `${fmt(site.utilization_pct, 1)} %`),
            ...pair("Power", `${fmt(site.facility_kw, 0)} / ${fmt(site.capacity_kw, 0)} kW`),
            ...pair("Local time", `${site.local_time} (UTC${site.utc_offset})`),
            ...pair("Temperature", site.temperature_c === null ? "–" : `${fmt(site.temperature_c, 1)} °C`),
            ...pair("PUE", `${fmt(site.pue, 3)} · ${site.cooling_label}`),
            ...pair("Energy price", `${fmt(site.energy_price_usd_per_mwh, 2)} USD/MWh`),
            ...pair("Price from", site.price_source),
            ...pair("Profit", site.profit_usd_per_h === null ? "–" : `${usd(site.profit_usd_per_h)}/h`),
          ]),
          el("div", { class: "mix", role: "img", "aria-label": `Mining ${fmt(mining, 0)} %, inference ${fmt(inference, 0)} %` }, [
            el("span", { class: "mining", style: `width:${mining}%` }),
            el("span", { class: "inference", style: `width:${inference}%` }),
          ]),
          el("div", { class: "mix-legend" }, [
            el("span", {}, [el("span", { class: "dot mining" }), `mining ${fmt(site.mining_kw, 0)} kW`]),
            el("span", {}, [el("span", { class: "dot inference" }), `inference ${fmt(site.inference_kw, 0)} kW`]),
          ]),
          el("button", {
            type: "button",
            class: "btn",
            text: "Map",
            "aria-label": `Show ${site.name} on the map`,
            onclick: () => showOnMap(site.code),
          }),
        ]);
      }),
    );
  }

  // Charts -------------------------------------------------------------------------------------------------

  const PALETTE = ["#38bdf8", "#a78bfa", "#34d399", "#fbbf24", "#f87171", "#f472b6", "#22d3ee", "#a3e635", "#fb923c", "#818cf8"];
  const HARDWARE_COLOURS = {
    miner_air: "#f59e0b",
    miner_hydro: "#fb923c",
    miner_immersion: "#fcd34d",
    inference_gpu: "#38bdf8",
    inference_asic: "#a78bfa",
  };
  const charts = {};

  function chartDefaults() {
    Chart.defaults.color = "#cbd5e1";
    Chart.defaults.borderColor = "rgba(255,255,255,0.08)";
    Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    Chart.defaults.animation = false;
    Chart.defaults.maintainAspectRatio = false;
    Chart.defaults.plugins.legend.labels.boxWidth = 10;
  }

  function upsertChart(id, build) {
    const spec = build();
    if (charts[id]) {
      charts[id].data = spec.data;
      charts[id].options = spec.options;
      charts[id].update("none");
    } else {
      charts[id] = new Chart($(id), spec);
    }
  }

  function renderCharts(d) {
    const runs = d.charts.runs;
    const runPoints = runs.t.length < 40 ? 3 : 0;
    upsertChart("chart-revenue", () => ({
      type: "line",
      data: {
        labels: runs.t.map(hhmm),
        datasets: [
          { label: "Revenue", data: runs.revenue_usd_per_h, borderColor: "#38bdf8", backgroundColor: "rgba(56,189,248,0.15)", fill: true, pointRadius: runPoints, tension: 0.25 },
          { label: "Profit", data: runs.profit_usd_per_h, borderColor: "#34d399", backgroundColor: "#34d399", pointRadius: runPoints, tension: 0.25 },
        ],
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: { y: { title: { display: true, text: "USD/h" } }, x: { ticks: { maxTicksLimit: 8 } } },
        plugins: { subtitle: { display: !runs.t.length, text: "No runs in the last 48 h yet" } },
      },
    }));

    const prices = d.charts.energy_prices;
    upsertChart("chart-prices", () => ({
      type: "line",
      data: {
        labels: prices.t.map(hhmm),
        datasets: prices.series.map((series, i) => ({
          label: series.name,
          data: series.values,
          borderColor: PALETTE[i % PALETTE.length],
          pointRadius: 0,
          borderWidth: 1.5,
          spanGaps: true,
        })),
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: { y: { title: { display: true, text: "USD/MWh" } }, x: { ticks: { maxTicksLimit: 8 } } },
        plugins: { legend: { position: "bottom", labels: { font: { size: 10 } } } },
      },
    }));

    const pueData = d.charts.pue_temperature;
    upsertChart("chart-pue", () => ({
      type: "scatter",
      data: {
        datasets: [
          ...pueData.curves.map((curve, i) => ({
            type: "line",
            label: curve.label,
            data: curve.points.map(([x, y]) => ({ x, y })),
            borderColor: PALETTE[i % PALETTE.length],
            pointRadius: 0,
            borderWidth: 1.5,
          })),
          {
            label: "Readings, last 24 h",
            data: pueData.history.map(([x, y]) => ({ x, y })),
            backgroundColor: "rgba(203,213,225,0.25)",
            pointRadius: 1.5,
          },
          {
            label: "Sites now",
            data: pueData.sites.map((s) => ({ x: s.temperature_c, y: s.pue, name: s.name })),
            backgroundColor: "#f8fafc",
            borderColor: "#0f172a",
            pointRadius: 5,
          },
        ],
      },
      options: {
        scales: {
          x: { type: "linear", title: { display: true, text: "Outdoor temperature (°C)" } },
          y: { title: { display: true, text: "PUE" } },
        },
        plugins: {
          legend: { position: "bottom", labels: { font: { size: 10 } } },
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.raw.name ? ctx.raw.name + ": " : ""}${fmt(ctx.raw.x, 1)} °C, PUE ${fmt(ctx.raw.y, 3)}`,
            },
          },
        },
      },
    }));

    const allocation = d.charts.allocation;
    upsertChart("chart-allocation", () => ({
      type: "bar",
      data: {
        labels: allocation.sites,
        datasets: allocation.series.map((series) => ({
          label: series.label.replace(/ \(.*\)$/, ""),
          data: series.it_kw,
          backgroundColor: HARDWARE_COLOURS[series.hardware] || "#94a3b8",
          stack: "kw",
        })),
      },
      options: {
        indexAxis: "y",
        scales: { x: { stacked: true, title: { display: true, text: "IT kW" } }, y: { stacked: true, ticks: { font: { size: 10 } } } },
        plugins: { legend: { position: "bottom", labels: { font: { size: 10 } } } },
      },
    }));

    upsertChart("chart-sla", () => ({
      type: "bar",
      data: {
        labels: d.tiers.map((t) => t.name),
        datasets: [
          { label: "Committed kW", data: d.tiers.map((t) => t.committed_kw), backgroundColor: "rgba(56,189,248,0.6)", yAxisID: "kw" },
          { type: "line", label: "Uptime %", data: d.tiers.map((t) => t.uptime_pct), borderColor: "#34d399", backgroundColor: "#34d399", yAxisID: "pct", pointRadius: 4, spanGaps: true },
          { type: "line", label: "Target %", data: d.tiers.map((t) => t.uptime_target_pct), borderColor: "#fbbf24", borderDash: [4, 4], pointRadius: 3, yAxisID: "pct", spanGaps: true },
        ],
      },
      options: {
        scales: {
          kw: { position: "left", beginAtZero: true, title: { display: true, text: "kW" } },
          pct: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "%" } },
        },
        plugins: { legend: { position: "bottom", labels: { font: { size: 10 } } } },
      },
    }));
  }

  // Scenarios panel ------------------------------------------------------------------------------------------

  function scenarioFigure(item) {
    const value = item.value;
    if (typeof value !== "number") return String(value ?? "–");
    if (item.unit === "USD") return usd(value, 0);
    if (item.unit === "USD/t") return `${usd(value, 2)}/t`;
    if (item.unit === "%") return `${fmt(value, 1)} %`;
    if (item.unit) return `${fmt(value, value !== 0 && Math.abs(value) < 10 ? 2 : 1)} ${item.unit}`;
    return Number.isInteger(value) ? fmt(value, 0) : fmt(value, 3);
  }

  function scenarioChart(chart) {
    const bar = chart.kind === "bar";
    return {
      type: bar ? "bar" : "line",
      data: {
        labels: chart.x,
        datasets: chart.series.map((series, i) => ({
          label: series.label,
          data: series.values,
          borderColor: PALETTE[i % PALETTE.length],
          backgroundColor: bar ? PALETTE[i % PALETTE.length] : "transparent",
          borderWidth: bar ? 0 : 1.8,
          pointRadius: bar ? undefined : 0,
          tension: 0.2,
        })),
      },
      options: {
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { title: { display: true, text: chart.x_label }, ticks: { maxTicksLimit: 12, font: { size: 10 } } },
          y: { title: { display: true, text: chart.y_label } },
        },
        plugins: {
          legend: { position: "bottom", labels: { font: { size: 10 } } },
          subtitle: { display: Boolean(chart.title), text: chart.title, font: { size: 11 } },
        },
      },
    };
  }

  function renderScenarios(scenarios) {
    const list = scenarios || [];
    const box = $("scenario-cards");
    $("scenario-empty").hidden = list.some((s) => s.has_run);
    for (const scenario of list) {
      let card = box.querySelector(`[data-scenario="${scenario.scenario}"]`);
      if (!card) {
        card = el("article", { class: "scenario-card", "data-scenario": scenario.scenario }, [
          el("header", {}, [el("h3", { text: scenario.label }), el("span", { class: "muted small scenario-meta" })]),
          el("p", { class: "scenario-title" }),
          el("dl", {}),
          el("div", { class: "chart-box", hidden: true }),
        ]);
        box.append(card);
      }
      const meta = card.querySelector(".scenario-meta");
      const title = card.querySelector(".scenario-title");
      const figures = card.querySelector("dl");
      const chartBox = card.querySelector(".chart-box");
      const id = `chart-scenario-${scenario.scenario}`;
      if (!scenario.has_run) {
        meta.textContent = "not run yet";
        title.replaceChildren("Run it: ", el("code", { text: `python manage.py scenario ${scenario.scenario}` }));
        figures.replaceChildren();
        if (charts[id]) {
          charts[id].destroy();
          delete charts[id];
        }
        chartBox.replaceChildren();
        chartBox.hidden = true;
        continue;
      }
      meta.textContent = [when(scenario.finished_at), scenario.requested_by, scenario.applied ? "applied" : null].filter(Boolean).join(" · ");
      title.textContent = scenario.title;
      figures.replaceChildren(...scenario.headline.flatMap((item) => [el("dt", { text: item.label }), el("dd", { text: scenarioFigure(item) })]));
      if (!scenario.chart.series.length) {
        chartBox.hidden = true;
        continue;
      }
      if (!$(id)) chartBox.replaceChildren(el("canvas", { id, role: "img", "aria-label": scenario.chart.title || scenario.label }));
      chartBox.hidden = false;
      upsertChart(id, () => scenarioChart(scenario.chart));
    }
  }

  // Reasoning panel (AI Optimize) ----------------------------------------------------------------------

  function renderRun(run) {
    const badge = $("run-badge");
    const body = $("run-body");
    if (!run) {
      badge.textContent = "no run yet";
      delete badge.dataset.status;
      return;
    }
    badge.textContent = `run #${run.id} · ${run.status_label}`;
    badge.dataset.status = run.status;
    $("run-progress").hidden = run.is_finished;
    const parts = [];
    if (!run.is_finished) {
      parts.push(el("p", { text: run.status === "queued" ? "Queued: waiting for a worker…" : "Solving…" }));
    }
    if (run.profit_usd_per_h !== null) {
      parts.push(
        el("div", { class: "run-figures" }, [
          el("span", { text: `Revenue ${usd(run.revenue_usd_per_h)}/h` }),
          el("span", { text: `Energy ${usd(run.energy_cost_usd_per_h)}/h` }),
          el("span", { text: `Profit ${usd(run.profit_usd_per_h)}/h` }),
          el("span", { class: "muted", text: `${run.strategy} · ${run.trigger} · ${when(run.finished_at || run.queued_at)}` }),
        ]),
      );
    }
    if (run.error) parts.push(el("h3", { text: "Why not applied" }), el("p", { class: "explanation", text: run.error }));
    if (run.explanation) parts.push(el("h3", { text: "Explanation" }), el("div", { class: "explanation", id: "run-explanation", text: run.explanation }));
    if (run.binding && run.binding.length) {
      parts.push(el("h3", { text: "What binds" }), el("ul", { class: "binding" }, run.binding.map((line) => el("li", { text: line }))));
    }
    if (run.advisor_status === "pending") parts.push(el("p", { class: "muted", text: "Claude is reviewing the plan…" }));
    if (run.advisor_narrative) {
      parts.push(el("h3", { text: `Claude${run.advisor_model ? " (" + run.advisor_model + ")" : ""}` }), el("p", { class: "narrative", text: run.advisor_narrative }));
    }
    if (run.advisor_verdict || !["not_requested", "pending"].includes(run.advisor_status)) {
      parts.push(el("h3", { text: "Verdict" }), el("p", { text: [run.advisor_status_label, run.advisor_verdict].filter(Boolean).join(": ") }));
    }
    body.replaceChildren(...parts);
  }

  let polling = null;

  const ADVICE_WAIT_MS = 90 * 1000;

  async function pollRun(runId, startedAt = Date.now(), finishedAt = null) {
    try {
      const run = await request(config.urls.run.replace("{id}", runId));
      renderRun(run);
      if (run.is_finished && finishedAt === null) {
        $("btn-optimize").disabled = false;
        if (run.status === "succeeded") toast(`Run #${run.id} applied: profit ${usd(run.profit_usd_per_h)}/h`, "success");
        else toast(`Run #${run.id} ${run.status_label.toLowerCase()}: ${run.error || "see the panel"}`, "error", 10000);
        refresh();
        finishedAt = Date.now();
      }
      if (run.is_finished) {
        // Claude reviews the applied plan on a worker afterwards: keep following until its verdict is in.
        if (run.advisor_status === "pending" && Date.now() - finishedAt < ADVICE_WAIT_MS) {
          polling = setTimeout(() => pollRun(runId, startedAt, finishedAt), 2000);
          return;
        }
        if (run.advisor_verdict && Date.now() - finishedAt > 1000) toast(`Claude on run #${run.id}: ${run.advisor_status_label}`, "info");
        polling = null;
        return;
      }
      if (Date.now() - startedAt > 5 * 60 * 1000) {
        polling = null;
        $("btn-optimize").disabled = false;
        toast(`Run #${runId} is still ${run.status}: is a worker running?`, "error", 10000);
        return;
      }
      polling = setTimeout(() => pollRun(runId, startedAt, finishedAt), 1500);
    } catch (error) {
      polling = null;
      $("btn-optimize").disabled = false;
      toast(`Could not follow run #${runId}: ${error.message}`, "error");
    }
  }

  async function optimize() {
    const button = $("btn-optimize");
    button.disabled = true;
    try {
      const answer = await request(config.urls.optimize, { method: "POST" });
      toast(`Optimization run #${answer.run_id} ${answer.status}`, "info", 3000);
      $("run-progress").hidden = false;
      if (polling) clearTimeout(polling);
      pollRun(answer.run_id);
    } catch (error) {
      button.disabled = false;
      toast(`AI Optimize failed: ${error.message}`, "error");
    }
  }

  async function initialize() {
    const button = $("btn-initialize");
    button.disabled = true;
    try {
      const answer = await request(config.urls.initialize, { method: "POST" });
      toast(answer.message, "success");
      await refresh();
    } catch (error) {
      toast(`Initialize failed: ${error.message}`, "error");
    } finally {
      button.disabled = false;
    }
  }

  // SLA panel ------------------------------------------------------------------------------------------------

  const SLA_FIELDS = ["customer", "tier", "capacity_kw", "duration_hours", "starts_at", "region_preference"];
  const FIELD_INPUTS = {
    customer: "sla-customer",
    tier: "sla-tier",
    capacity_kw: "sla-capacity",
    duration_hours: "sla-duration",
    starts_at: "sla-start",
    region_preference: "sla-region",
  };
  let currentQuote = null;

  function fillSelect(select, options, keep = true) {
    const previous = select.value;
    select.replaceChildren(...options.map(([value, label]) => el("option", { value, text: label })));
    if (keep && options.some(([value]) => String(value) === previous)) select.value = previous;
  }

  function renderSlaChoices(d) {
    const customerField = $("field-customer");
    if (config.user.is_staff) {
      customerField.hidden = false;
      fillSelect($("sla-customer"), d.customers.map((c) => [String(c.id), c.name]));
      if (config.user.customer_id && !$("sla-customer").dataset.touched) $("sla-customer").value = String(config.user.customer_id);
    } else {
      customerField.hidden = true;
    }
    fillSelect(
      $("sla-tier"),
      d.tiers.map((t) => [t.code, `${t.name} · ${t.uptime_target_pct === null ? "best effort" : fmt(t.uptime_target_pct, 1) + " %"} · ${fmt(t.price_multiplier, 1)}×`]),
    );
  }

  function clearErrors() {
    for (const name of SLA_FIELDS) {
      const error = $(`err-${name}`);
      error.hidden = true;
      error.textContent = "";
      const input = $(FIELD_INPUTS[name]);
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    }
    $("sla-form-error").hidden = true;
    $("sla-form-error").textContent = "";
  }

  function showErrors(body) {
    const general = [];
    let focused = false;
    for (const [name, messages] of Object.entries(body || {})) {
      const text = [].concat(messages).map((m) => (typeof m === "string" ? m : JSON.stringify(m))).join(" ");
      if (SLA_FIELDS.includes(name)) {
        const error = $(`err-${name}`);
        error.textContent = text;
        error.hidden = false;
        const input = $(FIELD_INPUTS[name]);
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", `err-${name}`);
        if (!focused) {
          input.focus();
          focused = true;
        }
      } else {
        general.push(name === "detail" || name === "non_field_errors" ? text : `${name}: ${text}`);
      }
    }
    if (general.length) {
      $("sla-form-error").textContent = general.join(" ");
      $("sla-form-error").hidden = false;
    }
  }

  function quoteBody() {
    const body = {
      tier: $("sla-tier").value,
      capacity_kw: $("sla-capacity").value.trim(),
      duration_hours: $("sla-duration").value.trim(),
    };
    // Staff may buy for a chosen customer; their own customer account (if any) needs no `customer` field.
    const chosen = config.user.is_staff ? $("sla-customer").value : "";
    if (chosen && Number(chosen) !== config.user.customer_id) body.customer = Number(chosen);
    const start = $("sla-start").value;
    if (start) body.starts_at = new Date(start).toISOString();
    if ($("sla-region").value) body.region_preference = $("sla-region").value;
    return body;
  }

  function renderQuote(quote) {
    const box = $("sla-quote");
    const sites = (quote.sites || []).map((s) => `${s.name || s.site} ${fmt(Number(s.capacity_kw), 0)} kW`).join(", ");
    const pair = (term, value) => [el("dt", { text: term }), el("dd", { text: value })];
    box.replaceChildren(
      el("strong", { text: `Quote #${quote.id}` }),
      el("dl", {}, [
        ...pair("Tier", String(quote.tier?.name || quote.tier || "")),
        ...pair("Capacity", `${fmt(Number(quote.capacity_kw), 3)} kW`),
        ...pair("Window", `${when(quote.starts_at)} → ${when(quote.ends_at)}`),
        ...pair("Price", `${fmt(Number(quote.price_usd_per_kwh), 4)} USD/kWh`),
        ...pair("Total", usd(Number(quote.total_usd), 2)),
        ...(sites ? pair("Sites", sites) : []),
        ...pair("Valid until", when(quote.valid_until)),
      ]),
    );
    box.hidden = false;
  }

  async function getQuote(event) {
    event.preventDefault();
    clearErrors();
    currentQuote = null;
    $("btn-request").disabled = true;
    $("sla-quote").hidden = true;
    $("btn-quote").disabled = true;
    try {
      const asked = quoteBody();
      currentQuote = await request(config.urls.quotes, { method: "POST", body: asked });
      currentQuote.forCustomer = asked.customer; // staff buying for a chosen customer must name it again
      renderQuote(currentQuote);
      $("btn-request").disabled = false;
      toast(`Quote #${currentQuote.id}: ${usd(Number(currentQuote.total_usd), 2)}`, "info", 4000);
    } catch (error) {
      if (error.status === 400) {
        showErrors(error.body);
        toast("Please correct the highlighted fields.", "error", 4000);
      } else {
        showErrors({ detail: error.message });
        toast(`Quote refused: ${error.message}`, "error");
      }
    } finally {
      $("btn-quote").disabled = false;
    }
  }

  async function requestContract() {
    if (!currentQuote) return;
    $("btn-request").disabled = true;
    clearErrors();
    try {
      const contract = await request(config.urls.contracts, {
        method: "POST",
        body: currentQuote.forCustomer ? { quote: currentQuote.id, customer: currentQuote.forCustomer } : { quote: currentQuote.id },
      });
      toast(`Contract #${contract.id} ${contract.status || "requested"}: ${fmt(Number(contract.capacity_kw), 0)} kW`, "success");
      currentQuote = null;
      $("sla-quote").hidden = true;
      await refresh();
    } catch (error) {
      $("btn-request").disabled = false;
      if (error.status === 400) showErrors(error.body);
      toast(`Contract refused: ${error.message}`, "error", 8000);
    }
  }

  function renderContracts(contracts) {
    const list = $("contract-list");
    if (!contracts.length) {
      list.replaceChildren(el("li", { class: "muted", text: "No contracts yet." }));
      return;
    }
    list.replaceChildren(
      ...contracts.map((c) =>
        el("li", { "data-contract": c.id }, [
          el("div", { class: "line" }, [
            el("strong", { text: `#${c.id} ${c.customer}` }),
            el("span", { class: `tier tier-${c.tier}`, text: c.tier_name }),
          ]),
          el("div", { class: "line muted" }, [
            el("span", { text: `${fmt(c.capacity_kw, 0)} kW · ${c.status_label}` }),
            el("span", { text: usd(c.quoted_total_usd, 2) }),
          ]),
          el("div", { class: "small muted", text: `${when(c.starts_at)} → ${when(c.ends_at)}` }),
        ]),
      ),
    );
  }

  // Refresh ---------------------------------------------------------------------------------------------------

  function renderAlert(run) {
    const banner = $("run-alert");
    banner.textContent = (run && run.alert) || "";
    banner.hidden = !banner.textContent;
  }

  function render(d) {
    renderStatus(d.status);
    renderAlert(d.latest_run);
    renderMetrics(d.metrics, d.tiers);
    renderMap(d.sites);
    renderSites(d.sites);
    renderCharts(d);
    if (!polling) renderRun(d.latest_run);
    renderSlaChoices(d);
    renderContracts(d.contracts);
    renderScenarios(d.scenarios);
    document.body.dataset.generatedAt = d.generated_at;
  }

  let refreshing = false;

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      data = await request(config.urls.data);
      render(data);
    } catch (error) {
      renderStatus({ state: "error", label: "Connection lost", detail: error.message });
      toast(`Refresh failed: ${error.message}`, "error");
    } finally {
      refreshing = false;
    }
  }

  function start() {
    chartDefaults();
    initMap();
    render(data);
    $("btn-initialize").addEventListener("click", initialize);
    $("btn-optimize").addEventListener("click", optimize);
    $("sla-form").addEventListener("submit", getQuote);
    $("btn-request").addEventListener("click", requestContract);
    $("sla-customer").addEventListener("change", (event) => (event.target.dataset.touched = "1"));
    setInterval(() => {
      if (!document.hidden) refresh();
    }, config.refresh_seconds * 1000);
    // Milliseconds from navigation start until the page is drawn and its controls work (bench/dashboard.py).
    document.body.dataset.readyMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
