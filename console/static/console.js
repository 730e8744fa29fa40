// The console's only script: keyboard shortcuts, the checklist, and the seat's long poll.
// Shipped with the package; nothing is loaded from the network but this server.
(function () {
  "use strict";

  function typing(event) {
    var t = event.target;
    return t && (t.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(t.type) ||
      t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  }

  // Waiting for the call: ask the console (which asks the dialling loop) until the seat changes.
  var body = document.body;
  var version = body.getAttribute("data-poll-version");
  if (version !== null) {
    var poll = function () {
      fetch("/op/seat.json?version=" + encodeURIComponent(version), { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (seat) {
          if (String(seat.version) !== String(version)) { window.location.replace("/op/call"); }
          else { poll(); }
        })
        .catch(function () { window.setTimeout(poll, 1000); });
    };
    poll();
  }

  // The talk script's checklist sets the script's state: the last step reached means completed.
  var checklist = document.getElementById("checklist");
  if (checklist) {
    var steps = checklist.querySelectorAll("input[name=step]");
    var update = function () {
      var any = false;
      steps.forEach(function (s) { any = any || s.checked; });
      var last = steps.length && steps[steps.length - 1].checked;
      var value = last ? "completed" : (any ? "incomplete" : "not_started");
      var radio = document.querySelector("input[name=script][value=" + value + "]");
      if (radio) { radio.checked = true; }
    };
    steps.forEach(function (s) { s.addEventListener("change", update); });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.altKey || event.metaKey || typing(event)) { return; }
    // Enter ends an unidentified caller's callback; an identified one's records its outcome (#record).
    var ready = document.getElementById("ready") ||
      (document.getElementById("record") ? null : document.getElementById("inbound-done"));
    if (ready && event.key === "Enter") { event.preventDefault(); ready.click(); return; }
    var button = document.querySelector("#classify-form button[data-key='" + event.key + "']");
    if (button) { event.preventDefault(); button.click(); return; }
    var radio = document.querySelector("input[name=disposition][data-key='" + event.key + "']");
    if (radio) { event.preventDefault(); radio.checked = true; radio.focus(); return; }
    var record = document.getElementById("record");
    if (record && event.key === "Enter" && event.target.tagName !== "BUTTON" && event.target.tagName !== "A") {
      event.preventDefault(); record.click();
    }
  });

  // The first error of a refused form gets the focus.
  var firstError = document.querySelector(".field-error");
  if (firstError) { firstError.scrollIntoView({ block: "center" }); }
})();
