// sftphook dashboard: dialogs, action menus, copy buttons, filter rows, live tables.
// Pages work without it (forms post, dialogs opened by the server are shown); it adds comfort.
"use strict";

(function () {
  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.prototype.slice.call((root || document).querySelectorAll(selector)); }

  // A one-time message id in the address bar must not survive a reload or a bookmark.
  var url = new URL(window.location.href);
  if (url.searchParams.has("m")) {
    url.searchParams.delete("m");
    history.replaceState(null, "", url.pathname + (url.search || "") + url.hash);
  }

  // Dialogs -------------------------------------------------------------------------------
  var opener = null;

  function openDialog(id, trigger) {
    var dialog = document.getElementById(id);
    if (!dialog) { return; }
    var form = $("form", dialog);
    if (trigger) {
      var action = trigger.getAttribute("data-action");
      if (form && action) { form.setAttribute("action", action); }
      var name = trigger.getAttribute("data-name");
      if (name !== null) {
        $all("[data-fill=name]", dialog).forEach(function (el) { el.textContent = name; });
      }
    }
    opener = trigger || document.activeElement;
    if (!dialog.open) { dialog.showModal(); }
    var first = $("[autofocus], input:not([type=hidden]):not([disabled]), select, textarea", dialog);
    var body = $(".dialog-body", dialog);
    if (first && body && body.contains(first)) { first.focus(); }
    else { var submit = $("[type=submit], [data-close]:not(.icon-btn)", dialog); if (submit) { submit.focus(); } }
  }

  document.addEventListener("click", function (ev) {
    var target = ev.target.closest("[data-open]");
    if (target && target.getAttribute("data-open")) {
      ev.preventDefault();
      closeMenus();
      openDialog(target.getAttribute("data-open"), target);
      return;
    }
    var closer = ev.target.closest("[data-close]");
    if (closer) {
      var dialog = closer.closest("dialog");
      if (dialog) { ev.preventDefault(); dialog.close(); }
    }
  });

  $all("dialog").forEach(function (dialog) {
    dialog.addEventListener("close", function () {
      // The attribute too: the property alone leaves the secret in the page's markup.
      $all("[data-secret]", dialog).forEach(function (input) { input.value = ""; input.removeAttribute("value"); });
      if (dialog.hasAttribute("data-remove-on-close")) { dialog.remove(); }
      if (opener && document.contains(opener)) { opener.focus(); }
      opener = null;
    });
    // A click on the backdrop closes an ordinary dialog (not the secret reveal).
    dialog.addEventListener("click", function (ev) {
      if (ev.target === dialog && !dialog.hasAttribute("data-modal-strict")) { dialog.close(); }
    });
    dialog.addEventListener("cancel", function (ev) {
      if (dialog.hasAttribute("data-modal-strict")) { ev.preventDefault(); }
    });
  });

  $all("[data-open-on-load]").forEach(function (el) {
    openDialog(el.getAttribute("data-open-on-load"), el.hasAttribute("data-action") ? el : null);
  });

  // Action menus (WAI-ARIA menu button) ------------------------------------------------------
  function items(menu) { return $all("[role=menuitem]", menu); }

  function closeMenus(except) {
    $all("[data-menu]").forEach(function (menu) {
      if (menu === except) { return; }
      var button = $("[aria-haspopup]", menu);
      var list = $("[role=menu]", menu);
      if (list && !list.hidden) { list.hidden = true; button.setAttribute("aria-expanded", "false"); }
    });
  }

  // Fixed to the viewport, so that a scrolling table does not clip it.
  function place(menu) {
    var button = $("[aria-haspopup]", menu);
    var list = $("[role=menu]", menu);
    var rect = button.getBoundingClientRect();
    var height = list.offsetHeight;
    var below = rect.bottom + 4;
    var above = rect.top - height - 4;
    list.style.top = (below + height > window.innerHeight && above > 0 ? above : below) + "px";
    list.style.right = Math.max(4, document.documentElement.clientWidth - rect.right) + "px";
  }

  function openMenu(menu, focusLast) {
    closeMenus(menu);
    var button = $("[aria-haspopup]", menu);
    var list = $("[role=menu]", menu);
    list.hidden = false;
    button.setAttribute("aria-expanded", "true");
    place(menu);
    var all = items(list);
    if (all.length) { all[focusLast ? all.length - 1 : 0].focus({ preventScroll: true }); }
  }

  $all("[data-menu]").forEach(function (menu) {
    var button = $("[aria-haspopup]", menu);
    var list = $("[role=menu]", menu);
    button.addEventListener("click", function () {
      if (list.hidden) { openMenu(menu, false); } else { closeMenus(); }
    });
    button.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown") { ev.preventDefault(); openMenu(menu, false); }
      if (ev.key === "ArrowUp") { ev.preventDefault(); openMenu(menu, true); }
    });
    list.addEventListener("keydown", function (ev) {
      var all = items(list);
      var index = all.indexOf(document.activeElement);
      if (ev.key === "ArrowDown") { ev.preventDefault(); all[(index + 1) % all.length].focus(); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); all[(index - 1 + all.length) % all.length].focus(); }
      else if (ev.key === "Home") { ev.preventDefault(); all[0].focus(); }
      else if (ev.key === "End") { ev.preventDefault(); all[all.length - 1].focus(); }
      else if (ev.key === "Escape") { ev.preventDefault(); closeMenus(); button.focus(); }
      else if (ev.key === "Tab") { closeMenus(); }
    });
  });

  document.addEventListener("click", function (ev) {
    if (!ev.target.closest("[data-menu]")) { closeMenus(); }
  });
  function placeOpenMenus() {
    $all("[data-menu]").forEach(function (menu) {
      if (!$("[role=menu]", menu).hidden) { place(menu); }
    });
  }
  window.addEventListener("resize", placeOpenMenus);
  window.addEventListener("scroll", placeOpenMenus, true);

  // Copy to clipboard ----------------------------------------------------------------------
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("[data-copy]");
    if (!button) { return; }
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) { return; }
    var text = source.value || source.textContent;
    function done() {
      var label = button.textContent;
      button.textContent = "Copied";
      var status = document.getElementById(button.getAttribute("data-copy") + "-status");
      if (status) { status.textContent = "Copied to the clipboard."; }
      setTimeout(function () { button.textContent = label; }, 1800);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { source.select(); document.execCommand("copy"); done(); });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });

  // Filter rules: add and remove rows ------------------------------------------------------
  document.addEventListener("click", function (ev) {
    var add = ev.target.closest("[data-add-rule]");
    if (add) {
      var container = document.getElementById(add.getAttribute("data-add-rule"));
      var template = document.getElementById("rule-template");
      if (container && template) {
        var row = template.content.firstElementChild.cloneNode(true);
        container.appendChild(row);
        var select = $("select", row);
        if (select) { select.focus(); }
      }
      return;
    }
    var remove = ev.target.closest("[data-remove-rule]");
    if (remove) {
      var rule = remove.closest(".rule");
      var list = rule.parentElement;
      rule.remove();
      var next = $("[data-add-rule]", list.parentElement);
      if (next) { next.focus(); }
    }
  });

  // Endpoint type: an email endpoint takes recipients instead of a URL, and no header ------
  function showEndpointType(select) {
    var form = select.form;
    if (!form) { return; }
    var email = select.value === "email";
    var label = $("[data-url-label]", form);
    var input = $("input[name=url]", form);
    if (label) { label.textContent = label.getAttribute(email ? "data-label-email" : "data-label-url"); }
    if (input) {
      input.type = email ? "text" : "url";
      input.setAttribute("inputmode", email ? "email" : "url");
      input.placeholder = input.getAttribute(email ? "data-placeholder-email" : "data-placeholder-url");
    }
    $all("[data-not-email]", form).forEach(function (el) { el.hidden = email; });
  }
  $all("[data-endpoint-type]").forEach(function (select) {
    select.addEventListener("change", function () { showEndpointType(select); });
  });

  // A field's server-side error no longer applies once the value changes.
  document.addEventListener("input", function (ev) {
    var input = ev.target;
    if (!input.getAttribute || input.getAttribute("aria-invalid") !== "true") { return; }
    input.removeAttribute("aria-invalid");
    var error = input.closest(".field") && $(".field-error", input.closest(".field"));
    if (error) { error.hidden = true; }
  });

  // Organization switcher submits on change -------------------------------------------------
  $all("[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Live tables: short polling of a fragment while the page is visible ---------------------
  $all("[data-poll]").forEach(function (target) {
    var source = target.getAttribute("data-poll");
    var every = parseInt(target.getAttribute("data-poll-every") || "2000", 10);
    var busy = false;
    function refresh() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(source, { headers: { "X-Requested-With": "fetch" }, credentials: "same-origin", cache: "no-store" })
        .then(function (resp) {
          if (resp.status === 401) { window.location.reload(); return null; }
          return resp.ok ? resp.text() : null;
        })
        .then(function (html) {
          if (html !== null && html !== undefined && html !== target.innerHTML) { target.innerHTML = html; }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }
    setInterval(refresh, every);
    document.addEventListener("visibilitychange", refresh);
  });
})();
