// Sends Django's CSRF token with every htmx request (no inline script: CSP).
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta) {
    event.detail.headers["X-CSRFToken"] = meta.content;
  }
});
// A failed htmx request shows its status instead of doing nothing.
document.addEventListener("htmx:responseError", function (event) {
  var box = document.getElementById("htmx-error");
  if (!box) {
    box = document.createElement("div");
    box.id = "htmx-error";
    box.className = "errornote";
    box.setAttribute("role", "alert");
    var content = document.getElementById("content") || document.body;
    content.insertBefore(box, content.firstChild);
  }
  var xhr = event.detail.xhr;
  box.textContent = "The server answered " + xhr.status + " " + xhr.statusText +
    ". " + (xhr.status === 403 ? "You do not have permission for this action." :
    "Reload the page and try again; nothing was changed by this click.");
});
document.addEventListener("htmx:sendError", function () {
  var box = document.getElementById("htmx-error") || document.createElement("div");
  box.id = "htmx-error";
  box.className = "errornote";
  box.setAttribute("role", "alert");
  box.textContent = "The dashboard did not answer. Check your connection and try again.";
  var content = document.getElementById("content") || document.body;
  if (!box.parentNode) content.insertBefore(box, content.firstChild);
});
