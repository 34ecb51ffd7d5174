import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'jit:isPublic';
export const SKIPS_ORIGIN_CHECK = 'jit:skipsOriginCheck';
export const IS_BACKGROUND = 'jit:isBackground';
export const WORKLOAD_ALLOWED = 'jit:workloadAllowed';

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

/**
 * For the few routes a workload's bearer token may call (issue 21): file a request, read and wait on its own,
 * activate and cancel it. Every other route answers a workload 403 WORKLOAD_FORBIDDEN before its handler runs.
 */
export const WorkloadAllowed = () => SetMetadata(WORKLOAD_ALLOWED, true);
