/* The Books panel: each applied run's USD/h by stream (optimizer/streams.py: mining, spot inference, SLA contracts,
 * ancillary-service capacity, event payments as revenue; penalties, energy cost, the coincident-peak charge and
 * other costs below zero: the stack's net is the run's profit) as stacked bars, from GET /api/dashboard/books/
 * (staff session, which names the streams), refreshed every 60 s. */
(function () {
  "use strict";
  const REFRESH_MS = 60000;
  const COLOURS = ["#f59e0b", "#38bdf8", "#818cf8", "#34d399", "#a3e635", "#ef4444", "#f472b6", "#fb923c", "#94a3b8"];
  let chart = null;

  function render(data) {
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
