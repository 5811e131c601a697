// Starts Swagger UI on the page /docs (broker/http/assets/docs.html) with the server's own OpenAPI document.
// Every URL is relative to the page, so the reference also works behind a path prefix, and nothing is
// fetched from another host: no validator badge, no fonts, no remote specification.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#reference",
    validatorUrl: null,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayOperationId: true,
    displayRequestDuration: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
