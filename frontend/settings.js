/** The runtime configuration that /config.js puts on window.APP_CONFIG. */

export class ConfigError extends Error {}

export function config() {
  const cfg = window.APP_CONFIG;
  if (!cfg || !cfg.apiBaseUrl || !cfg.cognitoClientId) {
    throw new ConfigError(
      'This page is not configured: /config.js is missing or incomplete. Start it with "make dev".',
    );
  }
  return cfg;
}

/** The API's base URL without a trailing slash, absolute. */
export function apiBaseUrl() {
  return new URL(config().apiBaseUrl, window.location.href).href.replace(/\/+$/, '');
}

/** The Cognito endpoint: the configured one (moto locally) or the region's public one. */
export function cognitoEndpoint() {
  const cfg = config();
  if (cfg.cognitoEndpoint) return cfg.cognitoEndpoint;
  return `https://cognito-idp.${cfg.cognitoRegion || 'us-east-1'}.amazonaws.com/`;
}
