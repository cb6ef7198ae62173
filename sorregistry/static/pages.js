/* The pages' small helpers: form sections shown by a choice, the register tree.
   Plain JavaScript, no build step; every page works without it, only less smoothly. */
(function () {
  "use strict";

  // <div data-show-when="ownership=privat"> is shown only while that radio is chosen.
  function syncShowWhen(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (section) {
      var rule = section.dataset.showWhen.split("=");
      var chosen = form.querySelector('input[name="' + rule[0] + '"]:checked');
      var hidden = form.querySelector('input[type="hidden"][name="' + rule[0] + '"]');
      var value = chosen ? chosen.value : hidden ? hidden.value : "";
      var show = value === rule[1];
      // A section holding an error stays visible, so the error can be seen.
      if (section.querySelector(".field-error")) { show = true; }
      section.hidden = !show;
    });
  }
  document.querySelectorAll("form").forEach(function (form) {
    if (!form.querySelector("[data-show-when]")) { return; }
    syncShowWhen(form);
    form.addEventListener("change", function () { syncShowWhen(form); });
  });

  // The register tree: a node's children are fetched when it is first opened.
  async function fetchFragment(url) {
    var response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) { throw new Error(response.status + " " + url); }
    var holder = document.createElement("div");
    holder.innerHTML = await response.text();
    return holder.firstElementChild;
  }

  document.addEventListener("click", async function (event) {
    var toggle = event.target.closest("button.toggle");
    if (toggle) {
      var box = document.getElementById(toggle.getAttribute("aria-controls"));
      var open = toggle.getAttribute("aria-expanded") === "true";
      if (!open && !box.dataset.loaded) {
        toggle.setAttribute("aria-busy", "true");
        try {
          box.replaceChildren(await fetchFragment(toggle.dataset.url));
          box.dataset.loaded = "1";
        } finally {
          toggle.removeAttribute("aria-busy");
        }
      }
      box.hidden = open;
      toggle.setAttribute("aria-expanded", String(!open));
      return;
    }
    var more = event.target.closest("button.more-button");
    if (more) {
      var list = await fetchFragment(more.dataset.url);
      var item = more.closest("li");
      var parent = item.parentElement;
      item.remove();
      Array.from(list.children).forEach(function (child) { parent.appendChild(child); });
    }
  });
})();
