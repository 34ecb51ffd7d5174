// Step-up (DESIGN §5): a fresh passkey assertion over a challenge bound to one action and one subject.
import {
  startAuthentication,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialRequestOptionsJSON,
} from '@simplewebauthn/browser';
import { api } from './api';
import { withPasskeyPrompt } from './passkey-waiting';

export type StepUpAction =
  | 'approve'
  | 'deny'
  | 'activate'
  | 'revoke'
  | 'break-glass'
  | 'invite.create'
  | 'invite.approve'
  | 'policy.reload'
  | 'authenticator.add'
  | 'authenticator.remove'
  | 'authenticator.disable'
  | 'user.suspend'
  | 'user.email'
  | 'audit.export'
  | 'grant.retry-revoke';

/** The `stepUp` field of a protected call's body. */
export interface StepUpProof {
  challengeId: string;
  response: AuthenticationResponseJSON;
}

/**
 * Asks for a challenge bound to `action` and `subjectId` (and, for parameter-bound actions, `params`) and
 * answers it with one of the person's passkeys.
 */
export async function stepUp(
  action: StepUpAction,
  subjectId: string,
  params?: Record<string, unknown>,
): Promise<StepUpProof> {
  const issued = await api.post<{ challengeId: string; options: PublicKeyCredentialRequestOptionsJSON }>(
    '/api/step-up/challenge',
    params === undefined ? { action, subjectId } : { action, subjectId, params },
  );
  const response = await withPasskeyPrompt(() => startAuthentication({ optionsJSON: issued.options }));
  return { challengeId: issued.challengeId, response };
}

/** POST `/api/requests/:id/<action>`: the step-up binds to the stored request, so it carries no params. */
export async function decideWithStepUp<T>(
  requestId: string,
  action: 'approve' | 'deny' | 'activate' | 'revoke',
  body: Record<string, unknown> = {},
): Promise<T> {
  const proof = await stepUp(action, requestId);
  return api.post<T>(`/api/requests/${encodeURIComponent(requestId)}/${action}`, { ...body, stepUp: proof });
}

/**
 * POST `body` with a step-up whose params are exactly `body`: the broker refuses the call unless what was
 * signed is what runs, so both come from the same object.
 */
export async function postWithBoundStepUp<T>(
  path: string,
  action: StepUpAction,
  subjectId: string,
  body: Record<string, unknown>,
): Promise<T> {
  const proof = await stepUp(action, subjectId, body);
  return api.post<T>(path, { ...body, stepUp: proof });
}
