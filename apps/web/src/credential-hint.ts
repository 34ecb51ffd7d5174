// A ready-to-run command per connector type, shown under a freshly minted credential.
import type { Credential } from './api';

/** A command that uses the credential as it is, per connector type; null when there is none to suggest. */
export function readyToRunHint(credential: Credential): { intro: string; command: string } | null {
  if (credential.type === 'postgres' && typeof credential.connectionString === 'string') {
    return { intro: 'Connect with psql:', command: `psql "${credential.connectionString}"` };
  }
  if (credential.type === 'jwt' && typeof credential.token === 'string') {
    const url = audienceOf(credential.token) ?? 'https://your-api.example';
    const command = `curl -H "Authorization: Bearer ${credential.token}" ${url}`;
    return { intro: 'Call the API with it:', command };
  }
  if (credential.type === 'ssh' && typeof credential.certificate === 'string') {
    const principals = Array.isArray(credential.principals) ? (credential.principals as string[]) : [];
    const user = principals[0] ?? 'user';
    return {
      intro: 'Save the certificate as jit-cert.pub next to your private key, then:',
      command: `ssh -o CertificateFile=jit-cert.pub -i ~/.ssh/id_ed25519 ${user}@host`,
    };
  }
  return null;
}

/** The token's `aud` when it is a URL (the API it is for), read without verifying: only for the hint. */
function audienceOf(token: string): string | null {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const { aud } = JSON.parse(atob(payload)) as { aud?: unknown };
    const first = Array.isArray(aud) ? aud[0] : aud;
    return typeof first === 'string' && /^https?:\/\//.test(first) ? first : null;
  } catch {
    return null;
  }
}
