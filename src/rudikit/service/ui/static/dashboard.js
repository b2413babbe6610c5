// Draws every chart of the page from its JSON spec (no inline scripts: the page's CSP forbids them).
document.querySelectorAll("script[type='application/json'][data-chart]").forEach(function (node) {
  var spec = JSON.parse(node.textContent);
  var target = document.getElementById(node.dataset.chart);
  Plotly.newPlot(target, spec.data, spec.layout, {displaylogo: false, responsive: true});
});
// Submit select-based filter forms on change.
document.querySelectorAll("form[data-autosubmit] select").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});
