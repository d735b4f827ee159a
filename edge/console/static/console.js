// Live pages: the server sends the page's live part again on every change (server-sent events).
// A field being typed in is not replaced under the user's fingers: the update waits for it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.EventSource) { return; }
  var pending = null;
  function busy() {
    var el = document.activeElement;
    return el && live.contains(el) && (el.tagName === "INPUT" || el.tagName === "SELECT") &&
      (el.tagName === "SELECT" || el.value !== "");
  }
  function apply() {
    if (pending === null) { return; }
    if (busy()) { setTimeout(apply, 1000); return; }
    live.innerHTML = pending;
    pending = null;
  }
  var source = new EventSource("/events?view=" + encodeURIComponent(live.dataset.view));
  source.addEventListener("live", function (e) { pending = e.data; apply(); });
  source.addEventListener("end", function () { source.close(); window.location.reload(); });
})();
