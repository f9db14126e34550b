/* The Books panel: each applied run's USD/h by stream (mining, spot inference, SLA contracts, ancillary-service
 * capacity, event payments, coincident-peak charges avoided, penalties) as stacked bars, from
 * GET /api/dashboard/books/ (staff session), refreshed every 60 s. */
(function () {
  "use strict";
  const REFRESH_MS = 60000;
  const LABELS = {
    mining: "Mining",
    spot_inference: "Spot inference",
    sla_contracts: "SLA contracts",
    as_capacity: "Ancillary capacity",
    event_payments: "Event payments",
    cp_charges_avoided: "CP charges avoided",
    penalties: "Penalties",
  };
  const COLOURS = ["#f59e0b", "#38bdf8", "#818cf8", "#34d399", "#a3e635", "#f472b6", "#ef4444"];
  let chart = null;

  function render(data) {
    const runs = data.runs || [];
    document.getElementById("books-empty").hidden = runs.length > 0;
    const labels = runs.map((r) => `#${r.id} ${r.finished_at.slice(11, 16)}`);
    const datasets = (data.streams || []).map((name, i) => ({
      label: LABELS[name] || name,
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
