import { describe, expect, it } from '@jest/globals';
import { connectorRoleHazard } from './database-roles.js';

describe('connectorRoleHazard', () => {
  it('names the risk before PostgreSQL 16, where CREATEROLE can grant itself any non-superuser role', () => {
    expect(connectorRoleHazard(150_007, 'demo_connector')).toBe(
      'UNSAFE: PostgreSQL 15 lets the CREATEROLE role demo_connector grant itself any non-superuser role ' +
        '(the broker owner included); use PostgreSQL 16 or later',
    );
    expect(connectorRoleHazard(90_624, 'c')).toMatch(/^UNSAFE: PostgreSQL 9 lets/);
  });

  it('is null from PostgreSQL 16 on, where it may grant only roles held WITH ADMIN OPTION', () => {
    expect(connectorRoleHazard(160_000, 'demo_connector')).toBeNull();
    expect(connectorRoleHazard(180_001, 'demo_connector')).toBeNull();
  });
});
