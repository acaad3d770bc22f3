/**
 * The API reference: Swagger UI on the API's own /openapi.json. Signed in on the dashboard (same
 * origin, same sessionStorage), the page is authorised with that session's token at once; anyone
 * can paste a token into "Authorize" instead (python -m cli token --user EMAIL).
 */

import { getToken } from '../auth.js';
import { apiBaseUrl } from '../settings.js';

const status = document.getElementById('api-docs-status');

if (typeof window.SwaggerUIBundle !== 'function') {
  status.textContent = 'Swagger UI is not installed here: run `make install` (it comes from npm, never a CDN).';
} else {
  const ui = window.SwaggerUIBundle({
    url: `${apiBaseUrl()}/openapi.json`,
    dom_id: '#swagger-ui',
    deepLinking: true,
    persistAuthorization: false,
    tryItOutEnabled: false,
    onComplete: () => {
      const token = getToken();
      if (token) {
        ui.preauthorizeApiKey('bearer', token);
        status.textContent = 'Authorised with your dashboard session.';
      } else {
        status.textContent = 'Not signed in: use "Authorize" with a token, or sign in on the dashboard first.';
      }
    },
  });
  window.apiDocs = ui;
}
