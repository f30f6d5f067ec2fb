/* The Xero settings page: confirmation dialogs, and sections that follow a background task.
   Plain script, no framework; without it the page still works (links lead to a confirmation
   page, and a "Refresh" link updates a section). */
(function () {
  "use strict";

  // [data-xero-dialog="id"] opens that <dialog> instead of following its link.
  document.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-xero-dialog]");
    if (opener) {
      var dialog = document.getElementById(opener.getAttribute("data-xero-dialog"));
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
      }
      return;
    }
    var closer = event.target.closest("dialog [data-xero-close]");
    if (closer) {
      event.preventDefault();
      closer.closest("dialog").close();
    }
  });

  // [data-xero-poll="url"]: the section is fetched again every few seconds and replaced,
  // until the fresh copy no longer asks to be polled (the task is done). While nothing changes
  // (a sending that waits hours for Xero's daily limit) or the server does not answer, it asks
  // less and less often.
  var FIRST_MS = 1500;
  var LONGEST_MS = 30000;

  function follow(section, delay) {
    var url = section.getAttribute("data-xero-poll");
    if (!url) {
      return;
    }
    window.setTimeout(function () {
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(String(response.status));
          }
          return response.text();
        })
        .then(function (html) {
          var holder = document.createElement("template");
          holder.innerHTML = html.trim();
          var fresh = holder.content.firstElementChild;
          if (!fresh) {
            return;
          }
          var same = fresh.outerHTML === section.outerHTML;
          section.replaceWith(fresh);
          follow(fresh, same ? Math.min(delay * 2, LONGEST_MS) : FIRST_MS);
        })
        .catch(function () {
          follow(section, Math.min(delay * 2, LONGEST_MS));
        });
    }, delay);
  }

  document.querySelectorAll("[data-xero-poll]").forEach(function (section) {
    follow(section, FIRST_MS);
  });
})();
