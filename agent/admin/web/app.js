// corral's approval page: decisions go to the JSON API; the list is
// refreshed from the server when the event stream says something changed.
"use strict";

(function () {
  const main = document.getElementById("main");
  const csrf = main ? main.dataset.csrf : "";
  const status = document.getElementById("status");

  function say(msg) {
    if (status) status.textContent = msg;
  }

  async function post(path, body) {
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-Corral-CSRF"] = csrf;
    const resp = await fetch(path, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
    let data = null;
    const text = await resp.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    if (!resp.ok) {
      throw new Error((data && data.error) || resp.status + " " + resp.statusText);
    }
    return data;
  }

  const login = document.getElementById("login");
  if (login) {
    login.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const field = document.getElementById("token");
      const token = field.value;
      field.value = "";
      try {
        await post("/login", { token: token });
        window.location.replace("/");
      } catch (e) {
        say("Login refused: " + e.message);
      }
    });
  }

  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async function () {
      try {
        await post("/logout", {});
      } catch (e) {
        say("Logout failed: " + e.message);
        return;
      }
      window.location.replace("/");
    });
  }

  const list = document.getElementById("requests");
  if (!list) return;

  // A reason being typed is not thrown away by a refresh.
  function typing() {
    for (const el of list.querySelectorAll("input.reason")) {
      if (el.value !== "") return true;
    }
    return false;
  }

  let again = false;
  async function refresh() {
    if (typing()) {
      again = true;
      return;
    }
    again = false;
    try {
      const resp = await fetch("/requests/fragment", { credentials: "same-origin", cache: "no-store" });
      if (resp.status === 401) {
        window.location.replace("/");
        return;
      }
      if (resp.ok) {
        list.innerHTML = await resp.text();
      } else {
        let data = null;
        try { data = await resp.json(); } catch (e) { data = null; }
        say("Could not refresh: " + ((data && data.error) || resp.status + " " + resp.statusText));
      }
    } catch (e) {
      say("Could not refresh: " + e.message);
    }
  }

  list.addEventListener("input", function () {
    if (again && !typing()) refresh();
  });

  list.addEventListener("click", async function (ev) {
    const button = ev.target.closest("button[data-action]");
    if (!button) return;
    const article = button.closest("article.request");
    const id = article.dataset.id;
    const action = button.dataset.action;
    const reasonField = article.querySelector("input.reason");
    const reason = reasonField ? reasonField.value.trim() : "";
    if (action === "deny" && reason === "") {
      say("A denial needs a reason.");
      if (reasonField) reasonField.focus();
      return;
    }
    for (const b of article.querySelectorAll("button")) b.disabled = true;
    try {
      const req = await post("/v1/requests/" + encodeURIComponent(id) + "/" + action, { reason: reason });
      say(req.state + " " + req.id);
      if (reasonField) reasonField.value = "";
      article.remove();
    } catch (e) {
      say("Could not " + action + " " + id + ": " + e.message);
      for (const b of article.querySelectorAll("button")) b.disabled = false;
    }
    refresh();
  });

  if (window.EventSource) {
    const events = new EventSource("/v1/events");
    events.addEventListener("approval", refresh);
    // After a reconnection the list is fetched again: nothing is missed.
    events.addEventListener("open", refresh);
    // A refused reconnection (the session ended, or could not be checked)
    // is not retried by the browser: the page says so.
    events.addEventListener("error", function () {
      if (events.readyState === EventSource.CLOSED) say("Live updates stopped: reload the page.");
    });
  }
})();
