// warmd console: live updates without a reload. Listens to /api/v1/events and, on a
// change, fetches this same URL again and swaps every element marked data-live by id.
// The pages work without this script; it only saves the reload.
(function () {
  "use strict";
  var REFRESH_SPACING_MS = 300;
  var FEED_MAX = 50;
  var pending = null, inFlight = false, again = false, connectedBefore = false;
  window.warmdLoadedAt = window.warmdLoadedAt || Date.now();
  window.warmdRefreshes = 0;

  function setLive(on) {
    var badge = document.getElementById("live");
    if (!badge) return;
    badge.className = "live " + (on ? "on" : "off");
    badge.textContent = on ? "● live" : "○ reconnecting";
  }

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    document.querySelectorAll("[data-live][id]").forEach(function (old) {
      var next = fresh.getElementById(old.id);
      if (next && !old.contains(document.activeElement)) old.replaceWith(next);
    });
    window.warmdRefreshes += 1;
  }

  function refresh() {
    pending = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    fetch(location.href, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html) swap(html); })
      .catch(function () {})
      .then(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (!pending) pending = setTimeout(refresh, REFRESH_SPACING_MS);
  }

  function feed(data) {
    var list = document.getElementById("feed");
    if (!list || !data.topics.length) return;
    var empty = list.querySelector(".empty");
    if (empty) empty.remove();
    var item = document.createElement("li");
    var time = new Date().toISOString().substring(11, 19);
    item.textContent = time + "  index " + data.applied_index + "  " + data.topics.join(", ") +
      " changed · leader node " + data.leader_id + " (term " + data.term + ")";
    list.prepend(item);
    while (list.children.length > FEED_MAX) list.lastChild.remove();
  }

  function connect() {
    if (!window.EventSource) return;
    var source = new EventSource("/api/v1/events");
    source.onopen = function () {
      setLive(true);
      if (connectedBefore) schedule();  // changes may have been missed while away
      connectedBefore = true;
    };
    source.onerror = function () { setLive(false); };
    source.addEventListener("change", function (event) {
      var data = JSON.parse(event.data);
      feed(data);
      if (data.topics.length) schedule();
    });
  }

  document.addEventListener("DOMContentLoaded", connect);
})();
