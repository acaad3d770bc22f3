/**
 * The fetch wrapper for the HTTP API (docs/api.md): bearer token, JSON in and out, and every
 * failure turned into an ApiError with the server's `code` and `message` (written for a person).
 */

import { getToken } from './auth.js';
import { apiBaseUrl } from './settings.js';

export const SESSION_EXPIRED_MESSAGE = 'Your session has expired. Please sign in again.';

export class ApiError extends Error {
  constructor(message, { status = 0, code = 'ERROR' } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }

  /** The request never got an answer: the outcome on the server is unknown. */
  get isNetworkError() {
    return this.code === 'NETWORK_ERROR';
  }
}

let unauthorizedHandler = () => {};

/** Called with a message when the API says 401 or the token has expired. */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

function expired() {
  unauthorizedHandler(SESSION_EXPIRED_MESSAGE);
  return new ApiError(SESSION_EXPIRED_MESSAGE, { status: 401, code: 'UNAUTHORIZED' });
}

/**
 * Call the API. `query` values that are null/undefined/'' are left out; `body` is sent as JSON;
 * `signal` (an AbortSignal) cancels it. Resolves to the parsed JSON body (or null); rejects with
 * ApiError.
 */
export async function request(path, { method = 'GET', query, body, headers = {}, signal } = {}) {
  const token = getToken();
  if (!token) throw expired();

  const url = new URL(apiBaseUrl() + path);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  const init = {
    method,
    headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...headers },
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }

  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    throw new ApiError(`Network error: ${error.message || 'the request failed'}`, {
      code: 'NETWORK_ERROR',
    });
  }

  const data = await readJson(response);
  if (response.status === 401) throw expired();
  if (!response.ok) {
    throw new ApiError(data?.message || `The request failed (HTTP ${response.status}).`, {
      status: response.status,
      code: data?.code || `HTTP_${response.status}`,
    });
  }
  return data;
}

async function readJson(response) {
  let text = '';
  try {
    text = await response.text();
  } catch {
    return null;
  }
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
