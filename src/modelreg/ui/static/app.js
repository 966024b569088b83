// modelreg web UI: progressive enhancements only; every page works without JavaScript.
(function () {
  "use strict";
  // Submit a form as soon as a <select data-autosubmit> changes (the metric chart picker).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
  // Compare: enable the button once two or more versions are ticked.
  var form = document.getElementById("compare-form");
  if (form) {
    var button = document.getElementById("compare-button");
    var hint = document.getElementById("compare-hint");
    var update = function () {
      var n = form.querySelectorAll("input[name=v]:checked").length;
      button.disabled = n < 2;
      hint.textContent = n < 2 ? "tick two or more versions" : n + " versions selected";
    };
    form.addEventListener("change", update);
    update();
  }
})();
