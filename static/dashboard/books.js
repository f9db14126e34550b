/* The Books panel: each applied run's USD/h by stream (optimizer/streams.py: mining, spot inference, SLA contracts,
 * ancillary-service capacity, event payments as revenue; penalties, energy cost, the coincident-peak charge and
 * other costs below zero: the stack's net is the run's profit) as stacked bars, from GET /api/dashboard/books/
 * (staff session, which names the streams), refreshed every 60 s. The same document's by_site fills the Revenue by
 * site panel: each site's USD by stream over the last 24 h as applied, stacked, and a table of revenue, energy
 * cost and profit per site with the fleet line (penalties, grid programs) and the total. */
(function () {
  "use strict";
  const REFRESH_MS = 60000;
  // In the order of optimizer/streams.py: mining, spot inference, SLA contracts, AS capacity, event payments,
  // penalties, energy cost, coincident-peak charge, other costs.
  const COLOURS = ["#f59e0b", "#38bdf8", "#818cf8", "#34d399", "#a3e635", "#ef4444", "#f472b6", "#e2e8f0", "#64748b"];
  let chart = null;
  let siteChart = null;
  const usd = (value) => {
    const digits = Math.abs(value) >= 100 ? 0 : 2;
    const rounded = Math.round(value * 10 ** digits) / 10 ** digits || 0; // no "-0"
    return rounded.toLocaleString("en-US", { maximumFractionDigits: digits });
  };

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
  }

  function siteRow(name, revenue, energy, profit) {
    const tr = document.createElement("tr");
    cell(tr, name);
    cell(tr, revenue === null ? "" : usd(revenue));
    cell(tr, energy === null ? "" : usd(energy));
    cell(tr, usd(profit), profit < 0 ? "loss" : "");
    return tr;
  }

  function renderSites(bySite) {
    if (!bySite) return;
    const sites = bySite.sites || [];
    document.getElementById("site-revenue-empty").hidden = sites.length > 0;
    document.getElementById("site-revenue-window").textContent =
      `USD over the last ${bySite.hours} h, as applied (plans in force ${bySite.covered_hours.toFixed(1)} h)`;
    const rows = document.getElementById("site-revenue-rows");
    rows.replaceChildren(...sites.map((s) => siteRow(s.name, s.revenue_usd, s.energy_cost_usd, s.profit_usd)));
    const fleet = bySite.fleet || {};
    const fleetProfit = bySite.streams.reduce((sum, name) => sum + (fleet[name] || 0), 0);
    const revenue = sites.reduce((sum, s) => sum + s.revenue_usd, 0);
    const energy = sites.reduce((sum, s) => sum + s.energy_cost_usd, 0);
    document.getElementById("site-revenue-foot").replaceChildren(
      siteRow("Fleet: penalties, grid", null, null, fleetProfit),
      siteRow("Total", revenue, energy, bySite.profit_usd),
    );
    if (typeof Chart === "undefined") return;
    const datasets = bySite.streams.map((name, i) => ({
      label: bySite.labels[name] || name,
      data: sites.map((s) => s.usd[name]),
      backgroundColor: COLOURS[i % COLOURS.length],
      stack: "site",
    }));
    const labels = sites.map((s) => s.name);
    if (siteChart) {
      siteChart.data.labels = labels;
      siteChart.data.datasets = datasets;
      siteChart.update();
      return;
    }
    siteChart = new Chart(document.getElementById("chart-site-revenue"), {
      type: "bar",
      data: { labels, datasets },
      options: {
        indexAxis: "y",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { position: "bottom" } },
        scales: {
          x: { stacked: true, title: { display: true, text: "USD" } },
          y: { stacked: true, ticks: { autoSkip: false } },
        },
      },
    });
  }

  function render(data) {
    renderSites(data.by_site);
    const runs = data.runs || [];
    document.getElementById("books-empty").hidden = runs.length > 0;
    const labels = runs.map((r) => `#${r.id} ${r.finished_at.slice(11, 16)}`);
    const datasets = (data.streams || []).map((name, i) => ({
      label: (data.labels || {})[name] || name,
      data: runs.map((r) => r.books[name]),
      backgroundColor: COLOURS[i % COLOURS.length],
      stack: "books",
    }));
    if (typeof Chart === "undefined") return;
    if (chart) {
      chart.data.labels = labels;
      chart.data.datasets = datasets;
      chart.update();
      return;
    }
    chart = new Chart(document.getElementById("chart-books"), {
      type: "bar",
      data: { labels, datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD/h" } } },
      },
    });
  }

  async function refresh(panel) {
    try {
      const response = await fetch(panel.dataset.url, { credentials: "same-origin" });
      if (response.ok) render(await response.json());
    } catch (error) {
      /* the next refresh tries again */
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const panel = document.getElementById("books");
    if (!panel) return;
    refresh(panel);
    setInterval(() => refresh(panel), REFRESH_MS);
  });
})();
