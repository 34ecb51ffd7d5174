import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'jit:isPublic';

/** Marks a route that answers without a session (health, JWKS, introspection, sign-in). */
export const Public = () => SetMetadata(IS_PUBLIC, true);
