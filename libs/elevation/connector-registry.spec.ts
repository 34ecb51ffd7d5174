import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '../config/config.js';
import { WebhookConnector } from '../connectors/webhook.connector.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Policy } from '../domain/policy.js';
import { SigningKeyStore } from '../keys/signing-key-store.js';
import { ConnectorRegistry } from './connector-registry.js';

// Building connectors touches no database: the DataSource is only used once a connector mints or revokes.
function registry(secrets: Record<string, string> = {}): ConnectorRegistry {
  const config = {
    masterKey: Buffer.alloc(32),
    http: { publicUrl: 'http://localhost:3000' },
    connectorSecret: (name: string) => secrets[name],
  } as unknown as AppConfig;
  return new ConnectorRegistry(
    config,
    {} as DataSource,
    new SigningKeyStore({} as DataSource, config.masterKey),
  );
}

function policy(connectors: Policy['connectors']): Policy {
  return { groups: {}, connectors, entitlements: [] };
}

function failure(run: () => unknown): DomainError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    return error as DomainError;
  }
  throw new Error('expected a DomainError');
}

describe('ConnectorRegistry: ssh and webhook', () => {
  it('gives every ssh connector the one broker CA', () => {
    const connectors = registry();
    const settings = policy({ bastion: { type: 'ssh' }, other: { type: 'ssh' } });
    expect(connectors.get(settings, 'bastion')).toBe(connectors.ssh);
    expect(connectors.get(settings, 'other')).toBe(connectors.ssh);
  });

  it('refuses caKeyEnv as not supported rather than ignoring it', () => {
    const error = failure(() =>
      registry().get(policy({ bastion: { type: 'ssh', caKeyEnv: 'SSH_CA_KEY' } }), 'bastion'),
    );
    expect(error.code).toBe(ErrorCode.NOT_SUPPORTED);
    expect(error.message).toContain('caKeyEnv');
  });

  it('builds a webhook connector with the secret from the environment', () => {
    const connectors = registry({ HOOK_SECRET: 'whsec_0123456789abcdef' });
    const settings = policy({
      hook: { type: 'webhook', url: 'https://hooks.example/jit', secretEnv: 'HOOK_SECRET' },
    });
    const hook = connectors.get(settings, 'hook');
    expect(hook).toBeInstanceOf(WebhookConnector);
    expect(hook.type).toBe('webhook');
  });

  it('names the missing or too short webhook secret variable (CONNECTOR_FAILED)', () => {
    const settings = policy({
      hook: { type: 'webhook', url: 'https://hooks.example/jit', secretEnv: 'HOOK_SECRET' },
    });
    const missing = failure(() => registry().get(settings, 'hook'));
    expect(missing.code).toBe(ErrorCode.CONNECTOR_FAILED);
    expect(missing.message).toBe(
      'Connector "hook" needs the environment variable HOOK_SECRET, which is not set',
    );
    const short = failure(() => registry({ HOOK_SECRET: 'tiny-secret' }).get(settings, 'hook'));
    expect(short.code).toBe(ErrorCode.CONNECTOR_FAILED);
    expect(short.message).toContain('HOOK_SECRET must be at least 16 characters');
    expect(short.message).not.toContain('tiny-secret');
  });

  it('names the missing postgres admin URL variable (CONNECTOR_FAILED)', () => {
    const settings = policy({ db: { type: 'postgres', urlEnv: 'DB_ADMIN_URL' } } as Policy['connectors']);
    const missing = failure(() => registry().get(settings, 'db'));
    expect(missing.code).toBe(ErrorCode.CONNECTOR_FAILED);
    expect(missing.message).toBe(
      'Connector "db" needs the environment variable DB_ADMIN_URL, which is not set',
    );
  });
});
