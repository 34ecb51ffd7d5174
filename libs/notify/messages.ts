// What a notification says (issue 18): pure rendering. A message names the request and links to its page,
// where any decision needs the passkey step-up: never a credential, an approve link, or an invite token.
import { NotificationKind } from './notification-kinds.js';

/** The facts one message may carry. */
export interface MessageFacts {
  kind: NotificationKind;
  requestId: string | null;
  entitlement: string | null;
  requester: string | null;
  /** Whose account (passkey, suspension, recovery). */
  username: string | null;
  detail: string | null;
  /** For a digest: the pending requests it lists. */
  items?: Array<{ requestId: string; entitlement: string; requester: string }>;
}

/** A rendered message: the same words on every channel. */
export interface Message {
  kind: NotificationKind;
  subject: string;
  lines: string[];
  /** The page to open (a request, the approvals inbox or the person's passkeys). */
  link: string;
}

const TITLES: Record<NotificationKind, string> = {
  [NotificationKind.RequestFiled]: 'Approval needed',
  [NotificationKind.RequestReminder]: 'Reminder: approval still needed',
  [NotificationKind.RequestDigest]: 'Requests waiting for your approval',
  [NotificationKind.RequestApproved]: 'Your request was approved',
  [NotificationKind.RequestDenied]: 'Your request was denied',
  [NotificationKind.RequestActivated]: 'Your access is active',
  [NotificationKind.RequestEndingSoon]: 'Your access ends in 5 minutes',
  [NotificationKind.RequestEnded]: 'Your access has ended',
  [NotificationKind.BreakGlassUsed]: 'Break-glass access used',
  [NotificationKind.BreakGlassReviewDue]: 'Break-glass review overdue',
  [NotificationKind.RevokeFailed]: 'ALERT: a revocation keeps failing',
  [NotificationKind.PasskeyAdded]: 'A passkey was added to an account',
  [NotificationKind.PasskeyRemoved]: 'A passkey was removed or disabled on an account',
  [NotificationKind.RecoveryUsed]: 'An account recovery link was used',
  [NotificationKind.UserSuspended]: 'An account was suspended',
};

/** Pure: the message for `facts`, with links under `publicUrl`. */
export function renderMessage(facts: MessageFacts, publicUrl: string): Message {
  const base = publicUrl.replace(/\/$/, '');
  const lines: string[] = [];
  if (facts.entitlement) lines.push(`Entitlement: ${facts.entitlement}`);
  if (facts.requester) lines.push(`Requested by: ${facts.requester}`);
  if (facts.username) lines.push(`Account: ${facts.username}`);
  if (facts.detail) lines.push(`Details: ${facts.detail}`);
  for (const item of facts.items ?? []) {
    lines.push(`- ${item.entitlement} for ${item.requester}: ${base}/requests/${item.requestId}`);
  }
  const link =
    facts.kind === NotificationKind.RequestDigest
      ? `${base}/approvals`
      : facts.requestId
        ? `${base}/requests/${facts.requestId}`
        : facts.kind === NotificationKind.PasskeyAdded || facts.kind === NotificationKind.PasskeyRemoved
          ? `${base}/me/passkeys`
          : `${base}/`;
  lines.push('Open the page to act; any decision asks for your passkey there.');
  return { kind: facts.kind, subject: `[JIT] ${TITLES[facts.kind]}`, lines, link };
}

/** Plain-text e-mail body. */
export function emailText(message: Message): string {
  return [...message.lines, '', message.link, ''].join('\n');
}

/** A Slack incoming-webhook body: Block Kit with a link button (the fallback `text` for notifications). */
export function slackBody(message: Message): Record<string, unknown> {
  return {
    text: `${message.subject}: ${message.link}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: message.subject.slice(0, 150) } },
      { type: 'section', text: { type: 'mrkdwn', text: message.lines.map(escapeMrkdwn).join('\n') } },
      {
        type: 'actions',
        elements: [
          { type: 'button', text: { type: 'plain_text', text: 'Open in the broker' }, url: message.link },
        ],
      },
    ],
  };
}

/** Slack's three control characters, so names and reasons cannot forge links or mentions. */
function escapeMrkdwn(line: string): string {
  return line.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
