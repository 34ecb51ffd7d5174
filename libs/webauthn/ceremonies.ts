import { createHash } from 'node:crypto';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { decodeAttestationObject, parseAuthenticatorData } from '@simplewebauthn/server/helpers';
import { DomainError, ErrorCode } from '../domain/errors.js';

/** The relying party as config describes it (DESIGN §5: rpID and expected origins come from config). */
export interface RelyingParty {
  rpId: string;
  rpName: string;
  origins: string[];
}

/** ES256, EdDSA, RS256: what platform and roaming authenticators offer and node:crypto verifies. */
const SUPPORTED_ALGORITHMS = [-7, -8, -257];
const CEREMONY_TIMEOUT_MS = 120_000;

/** A credential the user already holds, so the browser refuses to register the same one twice. */
export interface KnownCredential {
  credentialId: string;
  transports: string[];
}

/** Creation options (`challenge` is base64url): discoverable credential, user verification required, attestation `none`. */
export function registrationOptions(input: {
  rp: RelyingParty;
  challenge: string;
  userHandle: Buffer;
  username: string;
  displayName: string;
  exclude: KnownCredential[];
}): Promise<PublicKeyCredentialCreationOptionsJSON> {
  return generateRegistrationOptions({
    rpID: input.rp.rpId,
    rpName: input.rp.rpName,
    userID: new Uint8Array(input.userHandle),
    userName: input.username,
    userDisplayName: input.displayName,
    // Bytes, not the string: the library would otherwise encode the string's UTF-8 as the challenge.
    challenge: new Uint8Array(Buffer.from(input.challenge, 'base64url')),
    timeout: CEREMONY_TIMEOUT_MS,
    attestationType: 'none',
    excludeCredentials: input.exclude.map((known) => ({
      id: known.credentialId,
      transports: known.transports as never,
    })),
    authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
    supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
  });
}

/** Request options with user verification required; an empty allow-list asks for a discoverable credential. */
export function authenticationOptions(input: {
  rp: RelyingParty;
  challenge: string;
  allow: KnownCredential[];
}): Promise<PublicKeyCredentialRequestOptionsJSON> {
  return generateAuthenticationOptions({
    rpID: input.rp.rpId,
    challenge: new Uint8Array(Buffer.from(input.challenge, 'base64url')),
    timeout: CEREMONY_TIMEOUT_MS,
    userVerification: 'required',
    allowCredentials: input.allow.map((known) => ({
      id: known.credentialId,
      transports: known.transports as never,
    })),
  });
}

/** What a verified registration yields: everything the authenticators table keeps. */
export interface RegisteredCredential {
  credentialId: string;
  publicKey: Buffer;
  signCount: number;
  aaguid: string;
  backupEligible: boolean;
  backedUp: boolean;
  transports: string[];
}

/** Verifies an attestation; each way it can be wrong has its own error code, checked before the library runs. */
export async function verifyRegistration(
  response: RegistrationResponseJSON,
  expected: { rp: RelyingParty; challenge: string },
): Promise<RegisteredCredential> {
  checkClientData(response.response.clientDataJSON, 'webauthn.create', expected.challenge, expected.rp);
  const authenticatorData = attestedAuthenticatorData(response.response.attestationObject);
  checkAuthenticatorData(authenticatorData, expected.rp);
  const verification = await verifyRegistrationResponse({
    response,
    expectedChallenge: expected.challenge,
    expectedOrigin: expected.rp.origins,
    expectedRPID: expected.rp.rpId,
    requireUserVerification: true,
    supportedAlgorithmIDs: SUPPORTED_ALGORITHMS,
  }).catch((error: unknown) => {
    throw invalid(ErrorCode.ATTESTATION_INVALID, `The attestation does not verify: ${messageOf(error)}`);
  });
  if (!verification.verified) {
    throw invalid(ErrorCode.ATTESTATION_INVALID, 'The attestation does not verify');
  }
  const info = verification.registrationInfo;
  return {
    credentialId: info.credential.id,
    publicKey: Buffer.from(info.credential.publicKey),
    signCount: info.credential.counter,
    aaguid: info.aaguid,
    backupEligible: info.credentialDeviceType === 'multiDevice',
    backedUp: info.credentialBackedUp,
    // Hints only, and unknown values are to be ignored (WebAuthn L3 §5.8.4): keep the names we know.
    transports: (info.credential.transports ?? []).filter((transport) =>
      KNOWN_TRANSPORTS.has(transport as string),
    ),
  };
}

const KNOWN_TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

/** The decoded parts of a verified assertion, kept as step-up evidence. */
export interface VerifiedAssertion {
  credentialId: string;
  authenticatorData: Buffer;
  clientDataJson: Buffer;
  signature: Buffer;
  signCount: number;
  /** True when the counter did not go up: a late tab or a cloned authenticator (see signCountVerdict). */
  signCountRegressed: boolean;
  userHandle: string | null;
}

/**
 * Verifies an assertion against one stored credential. Origin, challenge, rpID, presence and verification
 * are checked here first, so each failure carries its own code; the library then checks the signature.
 * The counter is compared only after the signature holds, so a forged packet cannot disable a key.
 */
export async function verifyAssertion(
  response: AuthenticationResponseJSON,
  expected: { rp: RelyingParty; challenge: string; publicKey: Buffer; storedSignCount: number },
): Promise<VerifiedAssertion> {
  checkClientData(response.response.clientDataJSON, 'webauthn.get', expected.challenge, expected.rp);
  const authenticatorData = decodeBase64Url(response.response.authenticatorData, 'authenticatorData');
  const parsed = checkAuthenticatorData(authenticatorData, expected.rp);
  const verification = await verifyAuthenticationResponse({
    response,
    expectedChallenge: expected.challenge,
    expectedOrigin: expected.rp.origins,
    expectedRPID: expected.rp.rpId,
    requireUserVerification: true,
    // Counter 0 here: the regression check below runs only once the signature has verified.
    credential: { id: response.id, publicKey: new Uint8Array(expected.publicKey), counter: 0 },
  }).catch((error: unknown) => {
    throw invalid(ErrorCode.SIGNATURE_INVALID, `The assertion does not verify: ${messageOf(error)}`);
  });
  if (!verification.verified) throw invalid(ErrorCode.SIGNATURE_INVALID, 'The signature does not verify');
  const signCount = parsed.counter;
  return {
    credentialId: response.id,
    authenticatorData,
    clientDataJson: decodeBase64Url(response.response.clientDataJSON, 'clientDataJSON'),
    signature: decodeBase64Url(response.response.signature, 'signature'),
    signCount,
    signCountRegressed: !counterAccepted(signCount, expected.storedSignCount),
    userHandle: response.response.userHandle ?? null,
  };
}

/**
 * What a verified assertion's counter means (WebAuthn L3 §6.1.1). Counters of 0 on both sides: the
 * authenticator keeps none. A counter strictly below the stored one is `stale` when its challenge was issued
 * before the stored counter was accepted (another tab signed later and was submitted sooner: a race), and
 * `regressed` otherwise: it was signed after the stored counter existed, so a second copy of the key signed
 * it. A non-zero counter equal to the stored one is always `regressed`: a genuine authenticator never signs
 * the same counter twice, and challenges fetched anonymously in advance must not let a clone pass as a race.
 */
export function signCountVerdict(input: {
  signCount: number;
  storedSignCount: number;
  issuedBeforeStoredCount: boolean;
}): 'accepted' | 'stale' | 'regressed' {
  if (counterAccepted(input.signCount, input.storedSignCount)) return 'accepted';
  return input.signCount < input.storedSignCount && input.issuedBeforeStoredCount ? 'stale' : 'regressed';
}

function counterAccepted(signCount: number, storedSignCount: number): boolean {
  return (signCount === 0 && storedSignCount === 0) || signCount > storedSignCount;
}

/** The challenge a client echoed in clientDataJSON, to find the ceremony it answers; null when unreadable. */
export function echoedChallenge(clientDataJsonBase64Url: unknown): string | null {
  try {
    const clientData = JSON.parse(
      Buffer.from(String(clientDataJsonBase64Url), 'base64url').toString('utf8'),
    ) as unknown;
    const challenge = (clientData as { challenge?: unknown } | null)?.challenge;
    // Our challenges are base64url: anything else answers no ceremony (and never reaches a query).
    return typeof challenge === 'string' && ECHOED_CHALLENGE.test(challenge) ? challenge : null;
  } catch {
    return null;
  }
}

const ECHOED_CHALLENGE = /^[A-Za-z0-9_-]{1,128}$/;

function checkClientData(encoded: string, type: string, challenge: string, rp: RelyingParty): void {
  let clientData: {
    type?: unknown;
    challenge?: unknown;
    origin?: unknown;
    crossOrigin?: unknown;
    topOrigin?: unknown;
    tokenBinding?: unknown;
  };
  try {
    clientData = JSON.parse(decodeBase64Url(encoded, 'clientDataJSON').toString('utf8')) as typeof clientData;
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, 'clientDataJSON is not JSON');
  }
  if (typeof clientData !== 'object' || clientData === null) {
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, 'clientDataJSON is not a JSON object');
  }
  if (clientData.type !== type) {
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, `clientDataJSON.type must be ${type}`);
  }
  if (clientData.challenge !== challenge) {
    throw invalid(ErrorCode.CHALLENGE_MISMATCH, 'The response answers another challenge');
  }
  if (typeof clientData.origin !== 'string' || !rp.origins.includes(clientData.origin)) {
    throw invalid(
      ErrorCode.ORIGIN_MISMATCH,
      `The ceremony ran on origin ${JSON.stringify(clientData.origin)}, which is not allowed`,
    );
  }
  if (clientData.crossOrigin === true) {
    throw invalid(ErrorCode.ORIGIN_MISMATCH, 'The ceremony ran in a cross-origin frame');
  }
  // A top-level origin is only reported for a cross-origin frame (WebAuthn L3 §5.8.1), which is refused.
  if (clientData.topOrigin !== undefined) {
    throw invalid(
      ErrorCode.ORIGIN_MISMATCH,
      'clientDataJSON reports a top-level origin: a cross-origin frame',
    );
  }
  if (clientData.tokenBinding !== undefined && !knownTokenBinding(clientData.tokenBinding)) {
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, 'clientDataJSON.tokenBinding is not a known token binding');
  }
}

// Token binding is obsolete and not used here; a browser that still reports it sends one of these.
function knownTokenBinding(tokenBinding: unknown): boolean {
  const status = (tokenBinding as { status?: unknown } | null)?.status;
  return (
    typeof tokenBinding === 'object' &&
    tokenBinding !== null &&
    typeof status === 'string' &&
    ['present', 'supported', 'not-supported'].includes(status)
  );
}

function checkAuthenticatorData(authenticatorData: Buffer, rp: RelyingParty) {
  let parsed: ReturnType<typeof parseAuthenticatorData>;
  try {
    parsed = parseAuthenticatorData(new Uint8Array(authenticatorData));
  } catch {
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, 'authenticatorData cannot be parsed');
  }
  const expectedRpIdHash = createHash('sha256').update(rp.rpId).digest();
  if (!expectedRpIdHash.equals(Buffer.from(parsed.rpIdHash))) {
    throw invalid(
      ErrorCode.RP_ID_MISMATCH,
      `The credential is scoped to another relying party than ${rp.rpId}`,
    );
  }
  if (!parsed.flags.up) throw invalid(ErrorCode.USER_PRESENCE_REQUIRED, 'The user was not present');
  if (!parsed.flags.uv) {
    throw invalid(
      ErrorCode.USER_VERIFICATION_REQUIRED,
      'The authenticator did not verify the user (PIN or biometric)',
    );
  }
  return parsed;
}

function attestedAuthenticatorData(attestationObject: string): Buffer {
  try {
    const decoded = decodeAttestationObject(
      new Uint8Array(decodeBase64Url(attestationObject, 'attestationObject')),
    );
    const [fmt, attStmt, authData] = [decoded.get('fmt'), decoded.get('attStmt'), decoded.get('authData')];
    if (typeof fmt !== 'string' || !(attStmt instanceof Map) || !(authData instanceof Uint8Array)) {
      throw invalid(ErrorCode.WEBAUTHN_MALFORMED, 'attestationObject needs fmt, attStmt and authData');
    }
    return Buffer.from(authData);
  } catch (error) {
    if (error instanceof DomainError) throw error;
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, 'attestationObject cannot be decoded');
  }
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeBase64Url(value: unknown, name: string): Buffer {
  if (typeof value !== 'string' || value.length === 0 || !BASE64URL.test(value)) {
    throw invalid(ErrorCode.WEBAUTHN_MALFORMED, `${name} must be base64url`);
  }
  return Buffer.from(value, 'base64url');
}

function invalid(code: ErrorCode, message: string): DomainError {
  return new DomainError(code, message);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
