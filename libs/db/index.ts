export * from './data-source.js';
export * from './entities/approval.entity.js';
export * from './entities/audit-event.entity.js';
export * from './entities/elevation-request.entity.js';
export * from './entities/grant.entity.js';
export * from './entities/policy-version.entity.js';
export * from './entities/signing-key.entity.js';
export * from './entities/user.entity.js';
