import { describe, expect, it } from '@jest/globals';
import type { Entitlement, Policy } from '../domain/policy.js';
import { renderMessage, slackBody } from './messages.js';
import {
  approverUsernames,
  breakGlassUsernames,
  channelCarries,
  intentsOf,
  NotificationKind,
  type AuditRow,
} from './notification-kinds.js';

function event(action: string, data: Record<string, unknown> = {}, subjectId = 'subject'): AuditRow {
  return { seq: '1', actorId: 'actor', action, subjectType: 'request', subjectId, requestId: 'r1', data };
}

describe('intentsOf', () => {
  it('tells approvers of a filed request, but not of self-service or break-glass filings', () => {
    expect(intentsOf(event('request.created', { subject: { breakGlass: false } }))).toEqual([
      expect.objectContaining({ kind: NotificationKind.RequestFiled, audiences: ['approvers'] }),
    ]);
    expect(intentsOf(event('request.created', { selfService: true }))).toEqual([]);
    expect(intentsOf(event('request.created', { subject: { breakGlass: true } }))).toEqual([]);
  });

  it('tells the requester of a denial with its reason, approvers and admins of break-glass at once', () => {
    expect(intentsOf(event('request.denied', { reason: 'not now' }))).toEqual([
      expect.objectContaining({
        kind: NotificationKind.RequestDenied,
        audiences: ['requester'],
        detail: 'not now',
      }),
    ]);
    expect(intentsOf(event('break-glass.activated', { justification: 'outage' }))[0].audiences).toEqual([
      'break-glass-notify',
      'admins',
    ]);
    expect(intentsOf(event('grant.revoke_failed', { error: 'answered 500' }))[0]).toMatchObject({
      kind: NotificationKind.RevokeFailed,
      audiences: ['admins'],
    });
  });

  it('tells a person and the admins of passkey changes after enrollment, recoveries and suspensions', () => {
    expect(intentsOf(event('authenticator.registered', { enrolledVia: 'invite', userId: 'u1' }))).toEqual([]);
    expect(
      intentsOf(event('authenticator.registered', { enrolledVia: 'step-up', userId: 'u1' }))[0],
    ).toMatchObject({
      kind: NotificationKind.PasskeyAdded,
      subjectUserId: 'u1',
    });
    for (const data of [
      { reason: 'admin', userId: 'u3', detail: 'phone lost' },
      { reason: 'sign-count-regression', userId: 'u3', detail: 'counter went from 9 to 2' },
    ]) {
      expect(intentsOf(event('authenticator.disabled', data))).toEqual([
        {
          kind: NotificationKind.PasskeyRemoved,
          audiences: ['subject-user', 'admins'],
          subjectUserId: 'u3',
          detail: data.detail,
        },
      ]);
    }
    expect(intentsOf(event('invite.used', {}, 'u2'))).toEqual([]);
    expect(intentsOf(event('invite.used', { recovery: true }, 'u2'))[0].subjectUserId).toBe('u2');
    expect(intentsOf(event('user.suspended', {}, 'u3'))[0].audiences).toEqual(['subject-user', 'admins']);
    expect(intentsOf(event('session.started'))).toEqual([]);
  });
});

describe('recipients and channels', () => {
  const policy = { groups: { approvers: ['alice', 'bob'], oncall: ['carol'] } } as unknown as Policy;
  const entitlement = {
    approval: { approverGroups: ['approvers'] },
    breakGlass: { notify: ['oncall'] },
  } as unknown as Entitlement;

  it('never counts the requester among the approvers to tell', () => {
    expect(approverUsernames(policy, entitlement, 'alice')).toEqual(['bob']);
    expect(breakGlassUsernames(policy, entitlement, 'bob')).toEqual(['alice', 'carol']);
  });

  it('limits a channel to its listed kinds', () => {
    expect(channelCarries(undefined, NotificationKind.RequestFiled)).toBe(true);
    expect(channelCarries(['grant.revoke-failed'], NotificationKind.RequestFiled)).toBe(false);
  });
});

describe('messages', () => {
  it('link to the request page and escape Slack control characters', () => {
    const message = renderMessage(
      {
        kind: NotificationKind.RequestFiled,
        requestId: 'r1',
        entitlement: 'Token',
        requester: 'alice',
        username: null,
        detail: '<!channel> <https://evil|click>',
      },
      'https://broker.example/',
    );
    expect(message.link).toBe('https://broker.example/requests/r1');
    const text = JSON.stringify(slackBody(message));
    expect(text).not.toContain('<!channel>');
    expect(text).toContain('&lt;!channel&gt;');
  });
});
