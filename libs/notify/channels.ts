import nodemailer from 'nodemailer';
import {
  signWebhookBody,
  WEBHOOK_DELIVERY_HEADER,
  WEBHOOK_IDEMPOTENCY_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
} from '../connectors/webhook.connector.js';
import type { NotificationChannelConfig } from '../domain/policy.js';
import { emailText, slackBody, type Message } from './messages.js';

/** One send: where (an e-mail address, or the channel's name for shared channels), what, and its id. */
export interface Outgoing {
  deliveryId: string;
  recipient: string;
  message: Message;
}

/** Sends one message or throws; the caller records the outcome and BullMQ retries. */
export type Sender = (outgoing: Outgoing) => Promise<void>;

/** Whether a channel writes to each person (smtp) or once to a shared place (slack, webhook). */
export function isPersonalChannel(config: NotificationChannelConfig): boolean {
  return config.type === 'smtp';
}

/** Builds the sender of a channel; `secret` reads an environment variable the policy names. */
export function buildSender(
  name: string,
  config: NotificationChannelConfig,
  secret: (envName: string) => string | undefined,
  timeoutMs: number,
): Sender {
  const required = (envName: string): string => {
    const value = secret(envName);
    if (!value)
      throw new Error(`Channel "${name}" needs the environment variable ${envName}, which is not set`);
    return value;
  };
  switch (config.type) {
    case 'smtp':
      return smtpSender(
        config,
        config.userEnv ? required(config.userEnv) : null,
        config.passwordEnv ? required(config.passwordEnv) : null,
        timeoutMs,
      );
    case 'slack': {
      const url = required(config.urlEnv);
      return (outgoing) => postJson(url, JSON.stringify(slackBody(outgoing.message)), {}, timeoutMs);
    }
    case 'webhook':
      return webhookSender(config.url, required(config.secretEnv), timeoutMs);
  }
}

function smtpSender(
  config: Extract<NotificationChannelConfig, { type: 'smtp' }>,
  user: string | null,
  password: string | null,
  timeoutMs: number,
): Sender {
  const transport = nodemailer.createTransport({
    host: config.host,
    port: config.port,
    secure: config.secure === true,
    auth: user ? { user, pass: password ?? '' } : undefined,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  });
  return async ({ deliveryId, recipient, message }) => {
    await transport.sendMail({
      from: config.from,
      to: recipient,
      subject: message.subject,
      text: emailText(message),
      headers: { [WEBHOOK_DELIVERY_HEADER]: deliveryId },
    });
  };
}

/** Signed as the webhook connector signs its deliveries, so one receiver check serves both. */
function webhookSender(url: string, secret: string, timeoutMs: number): Sender {
  return async ({ deliveryId, recipient, message }) => {
    const body = JSON.stringify({
      event: 'notification',
      deliveryId,
      idempotencyKey: `notify:${deliveryId}`,
      channel: recipient,
      kind: message.kind,
      subject: message.subject,
      lines: message.lines,
      link: message.link,
    });
    const timestamp = String(Math.floor(Date.now() / 1000));
    await postJson(
      url,
      body,
      {
        [WEBHOOK_TIMESTAMP_HEADER]: timestamp,
        [WEBHOOK_SIGNATURE_HEADER]: signWebhookBody(secret, timestamp, body),
        [WEBHOOK_DELIVERY_HEADER]: deliveryId,
        [WEBHOOK_IDEMPOTENCY_HEADER]: `notify:${deliveryId}`,
      },
      timeoutMs,
    );
  };
}

async function postJson(url: string, body: string, headers: Record<string, string>, timeoutMs: number) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(timeoutMs),
  });
  await response.arrayBuffer().catch(() => undefined);
  if (response.status < 200 || response.status >= 300) {
    throw new Error(`the receiver answered ${response.status}`);
  }
}
