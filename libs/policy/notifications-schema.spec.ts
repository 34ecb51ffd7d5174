import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { DEFAULT_DIGEST_INTERVAL_SECONDS, DEFAULT_REMINDER_BEFORE_SECONDS } from '../domain/policy.js';
import { parsePolicy } from './policy-parser.js';

const LIMITS = { hardMaxDurationSeconds: 8 * 3600 };
const EXAMPLE = readFileSync(new URL('../../policies/example.yaml', import.meta.url), 'utf8');

describe('parsePolicy: notifications (issue 18)', () => {
  it('reads channels with their defaults; a policy without the section has none', () => {
    const notifications = `
notifications:
  channels:
    mail: { type: smtp, host: mail.example.test, port: 587, from: jit@example.test, passwordEnv: SMTP_PASSWORD }
    chat: { type: slack, urlEnv: SLACK_WEBHOOK_URL, events: [break-glass.used] }
    hook: { type: webhook, url: 'https://hooks.example.test/jit', secretEnv: NOTIFY_SECRET }
`;
    const policy = parsePolicy(
      [
        { name: 'a.yaml', text: EXAMPLE },
        { name: 'b.yaml', text: notifications },
      ],
      LIMITS,
    );
    expect(policy.notifications).toEqual({
      digestIntervalSeconds: DEFAULT_DIGEST_INTERVAL_SECONDS,
      reminderBeforeSeconds: DEFAULT_REMINDER_BEFORE_SECONDS,
      channels: {
        chat: { type: 'slack', urlEnv: 'SLACK_WEBHOOK_URL', events: ['break-glass.used'] },
        hook: { type: 'webhook', url: 'https://hooks.example.test/jit', secretEnv: 'NOTIFY_SECRET' },
        mail: {
          type: 'smtp',
          host: 'mail.example.test',
          port: 587,
          from: 'jit@example.test',
          passwordEnv: 'SMTP_PASSWORD',
        },
      },
    });
    expect(parsePolicy([{ name: 'a.yaml', text: EXAMPLE }], LIMITS).notifications).toBeUndefined();
  });

  it('refuses a secret in the file, an unknown channel type and a bad digest interval', () => {
    const parse = (section: string) => () =>
      parsePolicy([{ name: 'a.yaml', text: `${EXAMPLE}\nnotifications:\n${section}` }], LIMITS);
    expect(parse(`  channels:\n    chat: { type: slack, url: 'https://hooks.slack.test/T/B/X' }\n`)).toThrow(
      /unknown key "url"/,
    );
    expect(parse(`  channels:\n    pager: { type: sms, number: '1' }\n`)).toThrow(
      /must be one of smtp, slack, webhook/,
    );
    expect(parse(`  digestInterval: soon\n  channels: {}\n`)).toThrow(/digestInterval/);
  });
});
