// The API docs page of intraday-live (not part of Swagger UI): fetch the description,
// with the admin token when the server has one, and hand it to Swagger UI already
// authorized with that token, so that "Try it out" works on every route. The token
// stays in this page's memory: never in a URL, never stored.
"use strict";

(() => {
  const body = document.body;
  const descriptionUrl = body.dataset.description;
  const scheme = body.dataset.securityScheme;
  const form = document.getElementById("token-form");

  function show(spec, token) {
    form.hidden = true;
    const ui = SwaggerUIBundle({
      spec,
      dom_id: "#swagger-ui",
      onComplete: () => { if (token) ui.preauthorizeApiKey(scheme, token); },
    });
  }

  async function load(token) {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch(descriptionUrl, { headers });
    if (response.status === 401) throw new Error("the server refused the token");
    if (!response.ok) throw new Error(`the description answered ${response.status}`);
    show(await response.json(), token);
  }

  if (body.dataset.tokenRequired !== "true") {
    load(null).catch((error) => { document.getElementById("swagger-ui").textContent = error.message; });
    return;
  }
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    const token = input.value;
    input.value = "";
    load(token).catch((error) => { document.getElementById("token-error").textContent = error.message; });
  });
})();
