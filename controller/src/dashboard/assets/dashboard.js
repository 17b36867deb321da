// nomarch dashboard: follows the event stream the page names (<body data-stream>) and, when an
// event arrives, shows it and refreshes the page's content in place (#live-body) from the same
// URL; on a logs page, appends the lines the API streams. Loaded as a file: the Content-Security-Policy allows no inline script. Without it every
// page still works as plain links and forms.
(function () {
  "use strict";
  // A logs page: new lines from the API's followed answer, appended as they come.
  var log = document.getElementById("log");
  if (log) log.scrollTop = log.scrollHeight; // newest last: start at the end
  if (log && log.dataset.follow && window.fetch && window.TextDecoder) {
    fetch(log.dataset.follow, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok || !response.body) return;
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      function next() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.appendChild(document.createTextNode(decoder.decode(chunk.value, { stream: true })));
          if (atEnd) log.scrollTop = log.scrollHeight;
          return next();
        });
      }
      return next();
    }).catch(function () {});
  }
})();

(function () {
  "use strict";
  var body = document.body;
  var stream = body.dataset.stream;
  if (!stream || !window.EventSource || !window.fetch) return;
  // The stream starts with the events already stored; only those after the page was made
  // change what it shows.
  var since = Date.parse(body.dataset.now || "") || 0;
  var pending = null;

  function typing(region) {
    var active = document.activeElement;
    return active && region.contains(active) && /^(INPUT|SELECT|TEXTAREA)$/.test(active.tagName);
  }

  function refresh() {
    pending = null;
    var here = document.getElementById("live-body");
    if (!here) return;
    if (typing(here)) {
      pending = setTimeout(refresh, 1000);
      return;
    }
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (response.redirected || !response.ok) throw new Error("status " + response.status);
        return response.text();
      })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, "text/html").getElementById("live-body");
        if (next) {
          here.replaceWith(next);
          body.dataset.refreshed = String(Date.now());
        }
      })
      .catch(function () {
        // Signed out or the controller is away: the next event tries again.
      });
  }

  var source = new EventSource(stream);
  source.addEventListener("event", function (message) {
    var event;
    try {
      event = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (Date.parse(event.lastTimestamp) < since) return;
    var list = document.getElementById("live-events");
    if (list) {
      var item = document.createElement("li");
      item.dataset.type = event.type;
      var object = event.object || {};
      item.textContent = object.kind + " " + object.namespace + "/" + object.name + ": " +
        event.reason + " " + event.message;
      list.insertBefore(item, list.firstChild);
      while (list.children.length > 20) list.removeChild(list.lastChild);
    }
    if (!pending) pending = setTimeout(refresh, 200);
  });
})();
