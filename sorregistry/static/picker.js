/* The reporting form's picker: the lists with a filter on every column, the SHAK
   type-ahead, "SOR or SHAK, not both", and Valider. It talks to /picker/api/,
   which the login session authenticates; the one POST sends the CSRF token.
   Embedded in another site's page (/picker?embed=1, hierarchy/embed.py) it shows the
   lists only: a picker token in the address's fragment authenticates the lists, and the
   choice is posted to the embedding page's origin, which the server checked. */
(function () {
  "use strict";
  var root = document.getElementById("picker");
  if (!root) { return; }
  var api = root.dataset.api;
  var csrf = root.dataset.csrf;
  // Embedded: the choice goes to the origin the server checked (origin=), or else to the
  // parent's origin when it is one of SOR_PICKER_ORIGINS; never "*".
  var embedded = root.dataset.embedded === "1";
  var embedOrigin = root.dataset.embedOrigin || (embedded ? parentOrigin() : null);
  function parentOrigin() {
    var listed = JSON.parse(root.dataset.embedOrigins || "[]");
    var seen = [];
    var ancestors = window.location.ancestorOrigins;
    if (ancestors && ancestors.length) { seen.push(ancestors[0]); }
    try { if (document.referrer) { seen.push(new URL(document.referrer).origin); } } catch (e) { /* none */ }
    for (var i = 0; i < seen.length; i++) {
      if (listed.indexOf(seen[i]) >= 0) { return seen[i]; }
    }
    return null;
  }
  // The picker token comes in the fragment: never sent to a server, and taken out of
  // the address at once (it must not end up in a bookmark or a copied link).
  var token = null;
  var inFragment = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (inFragment) {
    token = decodeURIComponent(inFragment[1]);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var texts = JSON.parse(document.getElementById("picker-texts").textContent);
  function t(key, values) {
    return (texts[key] || key).replace(/\{(\w+)\}/g, function (_, name) {
      return values && name in values ? values[name] : "";
    });
  }
  function $(id) { return document.getElementById(id); }
  async function getJSON(url) {
    var headers = { Accept: "application/json" };
    if (token) { headers.Authorization = "Bearer " + token; }
    var response = await fetch(url, { credentials: "same-origin", headers: headers });
    return { ok: response.ok, status: response.status, body: await response.json() };
  }
  function describe(errors) {
    if (!errors) { return ""; }
    return Object.keys(errors).map(function (k) { return k + ": " + [].concat(errors[k]).join(", "); }).join("; ");
  }

  // --- SOR or SHAK, not both ------------------------------------------------------
  var sorInput = $("sor_code"), sorName = $("sor_name");
  var hospital = $("shak_hospital"), hospitalName = $("shak_hospital_name");
  var department = $("shak_department"), departmentName = $("shak_department_name");
  var hint = $("either-hint");
  var validation = $("validation");

  var unit = sorInput !== null;  // the reporting unit's fields: not when embedded
  function shakCode() { return unit ? (department.value.trim() || hospital.value.trim()) : ""; }
  function syncEither() {
    if (!unit) { return; }
    validation.replaceChildren();  // an earlier answer is about other codes
    var hasSor = sorInput.value.trim() !== "";
    var hasShak = shakCode() !== "";
    hospital.disabled = hasSor;
    department.disabled = hasSor || !hospitalName.value;
    sorInput.disabled = hasShak;
    hint.classList.toggle("emphasis", hasSor || hasShak);
  }
  if (unit) { unitFields(); }
  function unitFields() {
  sorInput.addEventListener("input", function () { sorName.textContent = ""; syncEither(); });
  $("sor-clear").addEventListener("click", function () {
    sorInput.value = ""; sorName.textContent = ""; syncEither(); sorInput.focus();
  });
  $("shak-clear").addEventListener("click", function () {
    hospital.value = ""; hospitalName.value = ""; department.value = ""; departmentName.value = "";
    syncEither(); hospital.focus();
  });

  // --- the SHAK type-ahead: an ARIA combobox with a list of options ----------------
  function combo(input, list, search, pick, typed) {
    var items = [], active = -1, timer = null, seq = 0;
    function close() {
      list.hidden = true; active = -1;
      input.setAttribute("aria-expanded", "false"); input.removeAttribute("aria-activedescendant");
    }
    function mark() {
      Array.from(list.children).forEach(function (li, i) { li.setAttribute("aria-selected", String(i === active)); });
      if (active >= 0) { input.setAttribute("aria-activedescendant", list.id + "-" + active); }
    }
    function choose(i) { var item = items[i]; input.value = item.code; close(); pick(item); syncEither(); }
    async function update() {
      var mine = ++seq;
      var found = await search(input.value.trim());
      if (mine !== seq) { return; }
      items = found; list.replaceChildren(); active = -1;
      items.forEach(function (item, i) {
        var li = document.createElement("li");
        li.id = list.id + "-" + i; li.setAttribute("role", "option"); li.setAttribute("aria-selected", "false");
        li.textContent = item.code + " – " + item.name;
        li.addEventListener("mousedown", function (e) { e.preventDefault(); choose(i); });
        list.appendChild(li);
      });
      list.hidden = items.length === 0;
      input.setAttribute("aria-expanded", String(!list.hidden));
      // A code typed in full fills in its name by itself.
      var exact = items.filter(function (item) { return item.code === input.value.trim().toUpperCase(); });
      if (exact.length === 1) { pick(exact[0]); syncEither(); }
    }
    input.addEventListener("input", function () {
      typed(); syncEither(); clearTimeout(timer); timer = setTimeout(update, 200);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        if (list.hidden) { update(); return; }
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : -1) + items.length) % items.length; mark();
      } else if (e.key === "Enter" && !list.hidden && active >= 0) {
        e.preventDefault(); choose(active);
      } else if (e.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 100); });
  }

  async function shakSearch(path, params) {
    var result = await getJSON(api + "/shak/" + path + "?" + new URLSearchParams(params));
    return result.ok ? result.body.items : [];
  }
  combo(hospital, $("shak_hospital_list"),
    function (q) { return shakSearch("hospitals", { q: q }); },
    function (item) {
      hospitalName.value = item.name; department.disabled = false;
    },
    function () {
      hospitalName.value = ""; department.value = ""; departmentName.value = ""; department.disabled = true;
    });
  combo(department, $("shak_department_list"),
    function (q) { return shakSearch("departments", { hospital: hospital.value.trim(), q: q }); },
    function (item) { departmentName.value = item.name; },
    function () { departmentName.value = ""; });

  // --- Valider ----------------------------------------------------------------------
  function findingList(kind, title, findings) {
    var box = document.createElement("div");
    box.className = kind + "-box";
    var h = document.createElement("h3"); h.textContent = title; box.appendChild(h);
    var ul = document.createElement("ul");
    findings.forEach(function (f) { var li = document.createElement("li"); li.textContent = f.message; ul.appendChild(li); });
    box.appendChild(ul);
    return box;
  }
  $("validate").addEventListener("click", async function () {
    var response = await fetch(api + "/validate", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json" },
      body: JSON.stringify({
        sor_code: sorInput.value.trim() || null, shak_code: shakCode() || null,
        period_start: $("period_start").value || null, period_end: $("period_end").value || null
      })
    });
    var body = await response.json();
    validation.replaceChildren();
    if (!response.ok) {
      validation.appendChild(findingList("error", t("Fejl"), [{ message: body.message + " " + describe(body.errors) }]));
      return;
    }
    if (body.errors.length) { validation.appendChild(findingList("error", t("Fejl"), body.errors)); }
    if (body.warnings.length) { validation.appendChild(findingList("warning", t("Advarsler"), body.warnings)); }
    if (!body.errors.length) {
      var ok = document.createElement("p"); ok.className = "ok-box";
      ok.textContent = t("Koden er gyldig.") + (body.organisation ? " " + body.organisation.name : "");
      validation.appendChild(ok);
    }
  });

  }  // unitFields

  // --- the lists ----------------------------------------------------------------------
  var tbody = document.querySelector("#picker-table tbody");
  var status = $("picker-status"), more = $("picker-more");
  var current = null, next = null, seq = 0, timer = null;
  var levelFilter = document.querySelector('[data-filter="level"]');

  function params(append) {
    var p = new URLSearchParams();
    document.querySelectorAll("[data-filter]").forEach(function (el) {
      if (!el.disabled && el.value.trim()) { p.append(el.dataset.filter, el.value.trim()); }
    });
    p.set("limit", "50");
    if (append && next) { p.set("cursor", next); }
    return p;
  }
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text || ""; row.appendChild(td); }
  function addRow(item) {
    var row = document.createElement("tr");
    cell(row, item.sor_code); cell(row, item.name); cell(row, item.level);
    cell(row, item.entity_type_name || item.entity_type); cell(row, item.ydernummer); cell(row, item.shak);
    cell(row, item.postal_code); cell(row, item.city);
    var td = document.createElement("td");
    var button = document.createElement("button");
    button.type = "button"; button.textContent = t("Vælg");
    button.setAttribute("aria-label", t("Vælg") + " " + item.name + " (" + item.sor_code + ")");
    button.addEventListener("click", function () { choose(item); });
    td.appendChild(button); row.appendChild(td);
    row.addEventListener("dblclick", function () { choose(item); });
    tbody.appendChild(row);
  }
  function choose(item) {
    var choice = { type: "sor-picker", sor_code: item.sor_code, name: item.name, level: item.level };
    if (item.shak) { choice.shak = item.shak; }
    if (embedded) {
      if (!embedOrigin) { status.textContent = t("Fejl"); return; }
      window.parent.postMessage(choice, embedOrigin);
      status.textContent = t("Valgt: {name}", { name: item.name });
      return;
    }
    if (shakCode()) { hint.classList.add("emphasis"); status.textContent = t("SOR-kode eller SHAK-kode, ikke begge."); return; }
    sorInput.value = item.sor_code;
    sorName.textContent = t("Valgt: {name}", { name: item.name });
    syncEither();
    sorInput.focus();
    // A reporting form of this site that frames the picker hears the choice.
    if (window.parent !== window) {
      window.parent.postMessage(choice, window.location.origin);
    }
  }
  async function load(append) {
    if (!current) { return; }
    var mine = ++seq;
    status.textContent = t("Henter…");
    var result = await getJSON(api + "/lists/" + current + "?" + params(append));
    if (mine !== seq) { return; }  // a later request answers instead
    if (!result.ok) {
      status.textContent = t("Ugyldigt filter") + ": " + (describe(result.body.errors) || result.body.message);
      return;
    }
    if (!append) { tbody.replaceChildren(); }
    result.body.items.forEach(addRow);
    next = result.body.next; more.hidden = !next;
    status.textContent = result.body.total
      ? t("{shown} af {total} vist", { shown: tbody.rows.length, total: result.body.total })
      : t("Ingen fundet.");
    if (!result.body.total && (result.body.suggestions || []).length) { suggest(result.body.suggestions); }
  }
  // "Mente du …?": what the name filter probably meant; a click searches for it.
  function suggest(suggestions) {
    var name = document.querySelector('[data-filter="name"]');
    status.appendChild(document.createTextNode(" " + t("Mente du") + " "));
    suggestions.forEach(function (text, i) {
      var button = document.createElement("button");
      button.type = "button"; button.className = "suggestion"; button.textContent = text;
      button.addEventListener("click", function () { name.value = text; load(false); name.focus(); });
      if (i) { status.appendChild(document.createTextNode(", ")); }
      status.appendChild(button);
    });
    status.appendChild(document.createTextNode("?"));
  }
  document.querySelectorAll("[data-list]").forEach(function (button) {
    button.addEventListener("click", function () {
      document.querySelectorAll("[data-list]").forEach(function (b) { b.setAttribute("aria-pressed", String(b === button)); });
      current = button.dataset.list;
      levelFilter.disabled = current === "my-cvr-si";  // SI only: nothing to filter
      load(false);
    });
  });
  document.querySelectorAll("[data-filter]").forEach(function (el) {
    el.addEventListener(el.tagName === "SELECT" ? "change" : "input", function () {
      clearTimeout(timer); timer = setTimeout(function () { load(false); }, 250);
    });
  });
  more.addEventListener("click", function () { load(true); });
  syncEither();
})();
