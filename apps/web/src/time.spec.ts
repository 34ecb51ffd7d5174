import { describe, expect, it } from '@jest/globals';
import { readyToRunHint } from './credential-hint';
import { stateByNow, timeLeft } from './time';

const AT = Date.parse('2026-12-04T10:00:00.000Z');
const request = { state: 'ACTIVE', notAfter: null, pendingUntil: null, activateBy: null };

describe('countdowns on the server clock', () => {
  it('counts the time left to the second, and nothing once it has passed', () => {
    expect(timeLeft('2026-12-04T10:04:05.000Z', AT)).toBe('4 min 5 s left');
    expect(timeLeft('2026-12-04T10:00:00.400Z', AT)).toBe('1 s left');
    expect(timeLeft('2026-12-04T10:00:00.000Z', AT)).toBeNull();
    expect(timeLeft(null, AT)).toBeNull();
  });

  it('shows a grant ENDED and a missed deadline EXPIRED the moment they pass', () => {
    const notAfter = '2026-12-04T10:00:00.000Z';
    expect(stateByNow({ ...request, notAfter }, AT - 1)).toBe('ACTIVE');
    expect(stateByNow({ ...request, notAfter }, AT)).toBe('ENDED');
    expect(stateByNow({ ...request, state: 'PENDING', pendingUntil: notAfter }, AT)).toBe('EXPIRED');
    expect(stateByNow({ ...request, state: 'APPROVED', activateBy: notAfter }, AT)).toBe('EXPIRED');
    expect(stateByNow({ ...request, state: 'REVOKED', notAfter }, AT)).toBe('REVOKED');
  });
});

describe('ready-to-run hints', () => {
  const notAfter = '2026-12-04T10:00:00.000Z';

  it('gives psql the connection string', () => {
    const connectionString = 'postgresql://jit_x:secret@db:5432/app';
    expect(readyToRunHint({ type: 'postgres', notAfter, connectionString })?.command).toBe(
      `psql "${connectionString}"`,
    );
  });

  it('gives curl the token as a bearer, for the API the token names as its audience', () => {
    const payload = btoa(JSON.stringify({ aud: 'https://api.example.com' })).replace(/=+$/, '');
    const token = `eyJhbGciOiJFUzI1NiJ9.${payload}.c2ln`;
    expect(readyToRunHint({ type: 'jwt', notAfter, token })?.command).toBe(
      `curl -H "Authorization: Bearer ${token}" https://api.example.com`,
    );
  });

  it('gives ssh the certificate file and the first principal', () => {
    const hint = readyToRunHint({
      type: 'ssh',
      notAfter,
      certificate: 'ssh-ed25519-cert-v01@openssh.com AAAA',
      principals: ['deploy'],
    });
    expect(hint?.command).toBe('ssh -o CertificateFile=jit-cert.pub -i ~/.ssh/id_ed25519 deploy@host');
  });

  it('suggests nothing for a webhook credential', () => {
    expect(readyToRunHint({ type: 'webhook', notAfter })).toBeNull();
  });
});
