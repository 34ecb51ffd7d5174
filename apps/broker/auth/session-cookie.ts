import type { Request, Response } from 'express';
import { parse } from 'cookie';
import type { AppConfig } from '../../../libs/config/config.js';

/** `__Host-` pins the cookie to this origin over https; plain http (localhost) cannot use the prefix. */
export function sessionCookieName(config: AppConfig): string {
  return config.secureCookies ? '__Host-jit_session' : 'jit_session';
}

/** The session token the browser sent, if any. */
export function readSessionToken(request: Request, config: AppConfig): string | null {
  const header = request.headers.cookie;
  if (!header) return null;
  const token = parse(header)[sessionCookieName(config)];
  return token && /^[A-Za-z0-9_-]{43}$/.test(token) ? token : null;
}

/** HttpOnly, SameSite=Strict, Secure outside localhost (DESIGN §5). */
export function setSessionCookie(
  response: Response,
  config: AppConfig,
  token: string,
  expiresAt: Date,
): void {
  response.cookie(sessionCookieName(config), token, {
    httpOnly: true,
    sameSite: 'strict',
    secure: config.secureCookies,
    path: '/',
    expires: expiresAt,
  });
}

export function clearSessionCookie(response: Response, config: AppConfig): void {
  response.clearCookie(sessionCookieName(config), {
    httpOnly: true,
    sameSite: 'strict',
    secure: config.secureCookies,
    path: '/',
  });
}
