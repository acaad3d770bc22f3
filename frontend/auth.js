/**
 * Sign-in against Cognito (InitiateAuth, USER_PASSWORD_AUTH) as a plain POST, and the session
 * kept in sessionStorage: the ID token (the API accepts it as the bearer token) and the email.
 */

import { cognitoEndpoint, config } from './settings.js';

const TOKEN_KEY = 'vidproc.idToken';
const EMAIL_KEY = 'vidproc.email';

/** Seconds of slack so a token is not used in the last moments before it expires. */
const EXPIRY_SLACK_SECONDS = 10;

export class SignInError extends Error {}

/** The token's claims (unverified: the API verifies; the page only reads `exp` and `email`). */
export function tokenClaims(token) {
  try {
    const part = token.split('.')[1];
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64.padEnd(Math.ceil(base64.length / 4) * 4, '=');
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function isExpired(token) {
  const claims = tokenClaims(token);
  if (!claims) return true;
  if (typeof claims.exp !== 'number') return false;
  return claims.exp - EXPIRY_SLACK_SECONDS <= Date.now() / 1000;
}

/** The stored token, or null when there is none or it has expired. */
export function getToken() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token || isExpired(token)) return null;
  return token;
}

/** True when a token is stored but no longer valid: the session expired (not a sign-out). */
export function hasExpiredSession() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return Boolean(token) && isExpired(token);
}

export function signedInEmail() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const claims = token ? tokenClaims(token) : null;
  return sessionStorage.getItem(EMAIL_KEY) || claims?.email || '';
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(EMAIL_KEY);
}

const FRIENDLY_ERRORS = {
  NotAuthorizedException: 'Incorrect email or password.',
  UserNotFoundException: 'Incorrect email or password.',
  UserNotConfirmedException: 'This account is not confirmed yet.',
  PasswordResetRequiredException: 'A password reset is required for this account.',
  TooManyRequestsException: 'Too many attempts. Please wait a moment and try again.',
};

/** Sign in; on success the token is stored. Throws SignInError with a message for a person. */
export async function signIn(email, password) {
  let response;
  try {
    response = await fetch(cognitoEndpoint(), {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': 'AWSCognitoIdentityProviderService.InitiateAuth',
      },
      body: JSON.stringify({
        AuthFlow: 'USER_PASSWORD_AUTH',
        ClientId: config().cognitoClientId,
        AuthParameters: { USERNAME: email, PASSWORD: password },
      }),
    });
  } catch (error) {
    throw new SignInError(`Network error: ${error.message || 'could not reach the sign-in service'}`);
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = String(data.__type || '').split('#').pop();
    throw new SignInError(FRIENDLY_ERRORS[type] || data.message || `Sign-in failed (HTTP ${response.status}).`);
  }
  if (data.ChallengeName) {
    throw new SignInError(
      `This account needs a sign-in step this page does not support (${data.ChallengeName}).`,
    );
  }
  const token = data.AuthenticationResult && data.AuthenticationResult.IdToken;
  if (!token) throw new SignInError('Sign-in failed: no token was returned.');
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(EMAIL_KEY, tokenClaims(token)?.email || email);
}
