import { expect } from '@jest/globals';
import { clientAs, type TestStack } from './stack.js';

/**
 * alice files one `api-admin-token` request per duration (seconds), bob approves each, then alice activates
 * them one after the other (a passkey's signature counter must rise with each assertion the broker sees).
 * Returns the request ids and the minted jwts, in the order of `durations`.
 */
export async function activeGrants(
  stack: TestStack,
  durations: number[],
  justification: string,
): Promise<{ ids: string[]; tokens: string[] }> {
  const [alice, bob] = [clientAs(stack, 'alice'), clientAs(stack, 'bob')];
  const ids: string[] = [];
  for (const durationSeconds of durations) {
    const created = await alice.post('/api/requests', {
      entitlementId: 'api-admin-token',
      durationSeconds,
      justification,
    });
    expect(created.status).toBe(201);
    expect((await bob.decide(created.body.id, 'approve')).body.state).toBe('APPROVED');
    ids.push(created.body.id as string);
  }
  const tokens: string[] = [];
  for (const id of ids) {
    const activated = await alice.decide(id, 'activate');
    expect(activated.status).toBe(200);
    tokens.push(activated.body.credential.token as string);
  }
  return { ids, tokens };
}
