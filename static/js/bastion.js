/*
 * Bastion's own behaviour, in one static file so the Content-Security-Policy can refuse
 * every inline script and event-handler attribute. Everything here is progressive:
 * without JavaScript the forms and links still work (no confirmation, a plain link back).
 */
(function () {
  "use strict";

  // A 400 from a filter form carries the form's errors: inside [data-swap-errors]
  // htmx swaps it in like a 200 instead of dropping it.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.target;
    if (event.detail.xhr.status === 400 && target && target.closest && target.closest("[data-swap-errors]")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // <form data-confirm="Question?">: ask before submitting (plain forms; htmx forms use hx-confirm).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form && form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // <a data-history-back href="…">: go back when there is somewhere to go, else follow the link.
  document.addEventListener("click", function (event) {
    var link = event.target && event.target.closest && event.target.closest("a[data-history-back]");
    if (link && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });

  // <button data-copy="text">: copy the text to the clipboard (SSO details for the IdP); the text
  // stays visible next to it, so without JavaScript or clipboard access it can be selected by hand.
  document.addEventListener("click", function (event) {
    var button = event.target && event.target.closest && event.target.closest("button[data-copy]");
    if (!button || !navigator.clipboard) return;
    event.preventDefault();
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "Copied";
    });
  });

  // SSO attribute/claim mapping: choosing a preset fills the four fields with its names.
  function wireMappingPresets() {
    var section = document.querySelector("[data-sso-mapping]");
    var data = document.getElementById("sso-presets");
    if (!section || !data) return;
    var select = document.getElementById(section.getAttribute("data-preset-field"));
    if (!select) return;
    var presets = JSON.parse(data.textContent);
    select.addEventListener("change", function () {
      var chosen = presets[select.value];
      if (!chosen) return;
      ["email", "first_name", "last_name", "groups"].forEach(function (name) {
        var input = document.getElementById("id_attr_" + name);
        if (input) input.value = chosen[name] || "";
      });
    });
  }

  // <form data-autosubmit>: post at once (the SAML re-post page); its button is the fallback.
  function autosubmit() {
    var form = document.querySelector("form[data-autosubmit]");
    if (form) form.submit();
  }

  // [data-elevation-ends="<epoch seconds>"]: the break-glass banner's "N min left", kept moving.
  // The server rendered the first value and the end time; this only counts down (rounded up, like
  // the server) and says so when the time box is over. The server refuses the rights either way.
  function elevationCountdown() {
    var banners = document.querySelectorAll("[data-elevation-ends]");
    if (!banners.length) return;
    function tick() {
      var now = Date.now() / 1000;
      banners.forEach(function (banner) {
        var left = Number(banner.getAttribute("data-elevation-ends")) - now;
        var label = banner.querySelector("[data-elevation-left]");
        if (!label) return;
        label.textContent = left > 0 ? Math.ceil(left / 60) + " min left" : "ended; reload the page";
      });
    }
    tick();
    window.setInterval(tick, 15000);
  }

  function ready() {
    wireMappingPresets();
    autosubmit();
    elevationCountdown();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
