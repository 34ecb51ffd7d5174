import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'jit:isPublic';
export const SKIPS_ORIGIN_CHECK = 'jit:skipsOriginCheck';
export const IS_BACKGROUND = 'jit:isBackground';

/** Marks a route that answers without a session (health, JWKS, introspection, enrollment, sign-in). */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/**
 * For server-to-server POSTs authenticated otherwise (introspection's client credentials): browsers'
 * Origin rules do not apply, and no cookie is read.
 */
export const SkipOriginCheck = () => SetMetadata(SKIPS_ORIGIN_CHECK, true);

/**
 * For routes only a page's background traffic calls (the live-update stream): the session is checked but
 * its idle clock is not moved, so a forgotten tab cannot keep a session alive.
 */
export const Background = () => SetMetadata(IS_BACKGROUND, true);
