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
  // until the fresh copy no longer asks to be polled (the task is done).
  var EVERY_MS = 1500;

  function follow(section) {
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
          if (fresh) {
            section.replaceWith(fresh);
            follow(fresh);
          }
        })
        .catch(function () {
          follow(section);
        });
    }, EVERY_MS);
  }

  document.querySelectorAll("[data-xero-poll]").forEach(follow);
})();
