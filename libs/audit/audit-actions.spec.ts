import { describe, expect, it } from '@jest/globals';
import type { EntityManager } from 'typeorm';
import { AuditAction } from './audit-actions.js';
import { appendAuditEvent } from './audit-log.js';

/** Stored before the naming rule, kept so old exports and queries still match. */
const GRANDFATHERED: ReadonlySet<string> = new Set([AuditAction.GrantRevokeFailed]);

describe('AuditAction', () => {
  const values = Object.values(AuditAction);

  it('holds each stored action once', () => {
    expect(new Set(values).size).toBe(values.length);
  });

  it('names every action `subject.verb`: lowercase words and hyphens, dot-separated', () => {
    const misnamed = values.filter((action) => !/^[a-z-]+(\.[a-z-]+)+$/.test(action));
    expect(misnamed).toEqual([...GRANDFATHERED]);
    expect(AuditAction.GrantRevokeFailed).toBe('grant.revoke_failed');
  });

  it('keeps the values already in stored trails', () => {
    expect(AuditAction.RequestCreated).toBe('request.created');
    expect(AuditAction.ApprovalRecorded).toBe('approval.recorded');
    expect(AuditAction.LoginFailed).toBe('login.failed');
    expect(AuditAction.StepUpFailed).toBe('step-up.failed');
    expect(AuditAction.AuditCheckpoint).toBe('audit.checkpoint');
  });

  it('is the only thing the writer takes, each with its own payload (tsc checks this spec)', () => {
    const about = { actorId: 'a', subjectType: 's', subjectId: 'i' };
    // Never called: the directives fail the type check if the writer ever accepts these.
    const writes = (manager: EntityManager) => [
      appendAuditEvent(manager, { ...about, action: AuditAction.SessionEnded, data: { reason: 'logout' } }),
      // @ts-expect-error a string, even one an AuditAction holds, is not an AuditAction
      appendAuditEvent(manager, { ...about, action: 'session.ended', data: { reason: 'logout' } }),
      // @ts-expect-error session.ended carries { reason: 'logout' }
      appendAuditEvent(manager, { ...about, action: AuditAction.SessionEnded, data: { count: 1 } }),
    ];
    expect(writes).toBeInstanceOf(Function);
  });
});
