// Talks to the courtrec API with the token kept for this browser tab.
"use strict";

const api = {
  token: sessionStorage.getItem("courtrec.token"),
  user: JSON.parse(sessionStorage.getItem("courtrec.user") || "null"),

  async login(username, password) {
    const r = await fetch("/api/v1/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, body);
    this.token = body.token;
    this.user = { name: body.user, role: body.role };
    sessionStorage.setItem("courtrec.token", this.token);
    sessionStorage.setItem("courtrec.user", JSON.stringify(this.user));
    return this.user;
  },

  logout() {
    if (this.token) {
      fetch("/api/v1/logout", { method: "POST", headers: this.headers() }).catch(() => {});
    }
    this.token = null;
    this.user = null;
    sessionStorage.removeItem("courtrec.token");
    sessionStorage.removeItem("courtrec.user");
  },

  headers(extra) {
    return Object.assign({ authorization: "Bearer " + this.token }, extra || {});
  },

  async call(method, path, body, extraHeaders) {
    const init = { method, headers: this.headers(extraHeaders) };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const r = await fetch("/api/v1" + path, init);
    const data = await r.json().catch(() => null);
    if (!r.ok) throw new ApiError(r.status, data || {});
    return data;
  },

  async blob(path) {
    const r = await fetch("/api/v1" + path, { headers: this.headers() });
    if (!r.ok) throw new ApiError(r.status, {});
    return r.blob();
  },

  // Server-sent events read with fetch (EventSource cannot send the token).
  // Calls onEvent(name, data) for each; returns a function that stops it.
  stream(path, onEvent, onError) {
    const ctl = new AbortController();
    (async () => {
      try {
        const r = await fetch("/api/v1" + path, { headers: this.headers(), signal: ctl.signal });
        if (!r.ok) throw new ApiError(r.status, {});
        const reader = r.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            const chunk = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            let name = "message";
            const data = [];
            for (const line of chunk.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length) onEvent(name, data.join("\n"));
          }
        }
        throw new Error("stream ended");
      } catch (e) {
        if (!ctl.signal.aborted) onError(e);
      }
    })();
    return () => ctl.abort();
  },
};

class ApiError extends Error {
  constructor(status, body) {
    super(body.message || "HTTP " + status);
    this.status = status;
    this.kind = body.error;
  }
}
