/* The Machines panel: planned vs measured power per site, devices online / faulted / offline, and the dispatch
 * lag of the newest round, from GET /api/fleet/machines/ (staff session), refreshed every 30 s. */
(function () {
  "use strict";
  const REFRESH_MS = 30000;
  let chart = null;

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "–" : String(text);
    return td;
  }

  function render(panel, data) {
    const sites = data.sites || [];
    document.getElementById("machines-empty").hidden = sites.length > 0;
    const rows = sites.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.site = s.site;
      [s.site, s.planned_it_kw, s.measured_it_kw, s.meter_kw, s.devices, s.online, s.faulted, s.offline].forEach((v) =>
        tr.appendChild(cell(v)),
      );
      if (s.faulted > 0) tr.classList.add("warn");
      return tr;
    });
    document.getElementById("machines-rows").replaceChildren(...rows);
    const round = data.round;
    document.getElementById("machines-round").textContent = round
      ? `round ${round.id} (${round.trigger}${round.dry_run ? ", dry run" : ""}): ${round.seconds} s` +
        (round.lag_seconds !== null ? `, ${round.lag_seconds} s after its plan` : "")
      : "no dispatch round yet";
    if (typeof Chart === "undefined") return;
    // Colours of the dashboard's palette: Chart.js's default grey is invisible on the dark panels.
    const datasets = [
      { label: "Planned IT kW", data: sites.map((s) => s.planned_it_kw), backgroundColor: "#38bdf8" },
      { label: "Measured IT kW", data: sites.map((s) => s.measured_it_kw), backgroundColor: "#34d399" },
      { label: "Meter kW", data: sites.map((s) => s.meter_kw), backgroundColor: "#fbbf24" },
    ];
    const box = document.getElementById("machines-chart");
    box.hidden = sites.length === 0;
    if (!sites.length) return;
    if (!chart) {
      // The canvas exists only once there are devices to chart.
      const canvas = document.createElement("canvas");
      canvas.id = "chart-machines";
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", "Planned, measured and metered kilowatts per site");
      box.appendChild(canvas);
      chart = new Chart(canvas, {
        type: "bar",
        data: { labels: sites.map((s) => s.site), datasets },
        options: { responsive: true, maintainAspectRatio: false, animation: false },
      });
    } else {
      chart.data.labels = sites.map((s) => s.site);
      chart.data.datasets.forEach((d, i) => (d.data = datasets[i].data));
      chart.update();
    }
    panel.dataset.loaded = "true";
  }

  async function refresh(panel) {
    try {
      const response = await fetch(panel.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) render(panel, await response.json());
    } catch (error) {
      /* the main dashboard reports lost connections */
    }
  }

  function start() {
    const panel = document.getElementById("machines");
    if (!panel) return;
    refresh(panel);
    setInterval(() => {
      if (!document.hidden) refresh(panel);
    }, REFRESH_MS);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
