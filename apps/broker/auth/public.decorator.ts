import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'jit:isPublic';
export const SKIPS_ORIGIN_CHECK = 'jit:skipsOriginCheck';

/** Marks a route that answers without a session (health, JWKS, introspection, enrollment, sign-in). */
export const Public = () => SetMetadata(IS_PUBLIC, true);

/**
 * For server-to-server POSTs authenticated otherwise (introspection's client credentials): browsers'
 * Origin rules do not apply, and no cookie is read.
 */
export const SkipOriginCheck = () => SetMetadata(SKIPS_ORIGIN_CHECK, true);
