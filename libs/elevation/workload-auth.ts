import { Injectable, Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { v7 as uuidv7 } from 'uuid';
import {
  createRemoteJWKSet,
  decodeJwt,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';
import { UserStatus, type Actor } from '../domain/actor.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import { isHttpsOrLocal, subjectMatches, workloadUsername, type Workload } from '../domain/policy.js';
import { PolicyService } from '../policy/policy.service.js';

// Workload identity (issue 21): a pipeline or agent presents its CI provider's OIDC token as a bearer token on
// every call; no long-lived API key exists. The token must verify against its issuer's published keys, name the
// workload's audience, and carry a subject its pattern matches.

/** Signature algorithms CI providers use; `none` and HMAC (a shared secret) are never accepted. */
const ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
/** Clock skew accepted on exp/nbf/iat, in seconds. */
const CLOCK_TOLERANCE_SECONDS = 30;
/** Bound on one fetch of a discovery document or key set. */
const FETCH_TIMEOUT_MS = 5000;
/** A discovery document is read again after this long. */
const DISCOVERY_TTL_MS = 60 * 60_000;
/** Discovery documents are small; a bigger answer is refused rather than read. */
const DISCOVERY_MAX_BYTES = 64 * 1024;
/** A token may be valid for at most this long from now: a mis-set issuer's year-long token is refused. */
const MAX_TOKEN_LIFETIME_SECONDS = 24 * 60 * 60;
/** Bearer tokens longer than this are refused before any parsing. */
const MAX_TOKEN_LENGTH = 16 * 1024;

/** A verified token and the one workload of the policy it proves. */
export interface ProvenWorkload {
  workload: Workload;
  claims: JWTPayload;
}

/** Whether jose refused a claim (time, audience…) of a token whose signature it had verified. */
function signatureHeld(error: unknown): boolean {
  return error instanceof joseErrors.JWTExpired || error instanceof joseErrors.JWTClaimValidationFailed;
}

function refused(reason: string): DomainError {
  return new DomainError(ErrorCode.WORKLOAD_TOKEN_INVALID, `Workload token refused: ${reason}`);
}

/** Words for jose's refusals: what was wrong with the token, never the token itself. */
function reasonOf(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'it has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    if (error.claim === 'aud') return 'its audience is not one this broker accepts for that issuer';
    if (error.claim === 'nbf') return 'it is not valid yet';
    return `its "${error.claim}" claim is not acceptable (${error.reason})`;
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) return "no key of the issuer's key set signed it";
  if (error instanceof joseErrors.JWSSignatureVerificationFailed)
    return "its signature does not verify against the issuer's keys";
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'its signature algorithm is not accepted';
  if (error instanceof joseErrors.JWKSTimeout || error instanceof joseErrors.JWKSInvalid)
    return "the issuer's key set could not be fetched";
  if (error instanceof joseErrors.JOSEError) return `it does not verify (${error.code})`;
  return "the issuer's keys could not be read";
}

/**
 * Verifies workload bearer tokens against the policy in force and returns the workload's actor. Key sets are
 * cached per URL by jose (refetched on an unknown `kid`, with a cooldown); discovery documents per issuer.
 */
@Injectable()
export class WorkloadAuthenticator {
  private readonly logger = new Logger(WorkloadAuthenticator.name);
  private readonly keySets = new Map<string, JWTVerifyGetKey>();
  private readonly discovered = new Map<string, { jwksUri: Promise<string>; at: number }>();
  /** Workload id → its users row id, once known (the row is never deleted). */
  private readonly userIds = new Map<string, string>();

  constructor(
    private readonly policies: PolicyService,
    private readonly dataSource: DataSource,
  ) {}

  /**
   * The workload a bearer token proves, or 401 saying why not. Reads nothing but the policy and the issuer's
   * keys, and writes nothing: a caller refused after this (a route a workload may not call) leaves no trace.
   */
  async verify(token: string): Promise<ProvenWorkload> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw refused('it is empty or too long');
    let claims: JWTPayload;
    try {
      claims = decodeJwt(token);
    } catch {
      throw refused('it is not a JWT');
    }
    const { policy } = await this.policies.inForce();
    const candidates = (policy.workloads ?? []).filter((workload) => workload.issuer === claims.iss);
    if (candidates.length === 0) throw refused('no workload in the policy trusts its issuer');
    const proven = await this.provenBy(token, claims, candidates);
    const sub = typeof claims.sub === 'string' ? claims.sub : '';
    if (proven.length === 0) throw refused(`its subject ${JSON.stringify(sub)} matches no workload`);
    if (proven.length > 1)
      throw refused(
        `its subject matches ${proven.map((p) => p.workload.id).join(', ')}: more than one workload`,
      );
    const [{ workload, claims: verified }] = proven;
    const lifetime = (verified.exp ?? 0) - Math.floor(Date.now() / 1000);
    if (lifetime > MAX_TOKEN_LIFETIME_SECONDS)
      throw refused(
        `it is valid for ${lifetime} s more; at most ${MAX_TOKEN_LIFETIME_SECONDS} s is accepted`,
      );
    return { workload, claims: verified };
  }

  /** The actor of a proven workload: its users row, created on its first call (403 when suspended). */
  async actorOf({ workload, claims }: ProvenWorkload): Promise<Actor> {
    const username = workloadUsername(workload.id);
    const user = await this.userOf(workload, username);
    if (user.status !== UserStatus.ACTIVE)
      throw new DomainError(ErrorCode.FORBIDDEN, `Workload "${workload.id}" is suspended`);
    return {
      id: user.id,
      username,
      displayName: workload.title,
      roles: [],
      workload: {
        id: workload.id,
        issuer: workload.issuer,
        subject: claims.sub!,
        jti: typeof claims.jti === 'string' ? claims.jti : null,
        ownerGroup: workload.ownerGroup,
      },
    };
  }

  /**
   * The workloads this token proves: each candidate is checked against its own key set, with its own audience
   * and subject pattern, so keys trusted for one workload never vouch for another of the same issuer.
   */
  private async provenBy(
    token: string,
    unverified: JWTPayload,
    candidates: Workload[],
  ): Promise<ProvenWorkload[]> {
    const proven: ProvenWorkload[] = [];
    let lastError: unknown = null;
    let verifiedAny = false;
    // The reason given is the one of the workload the token names by audience, when there is one.
    const named = new Set([unverified.aud ?? []].flat());
    const ordered = [...candidates].sort(
      (a, b) => Number(named.has(a.audience)) - Number(named.has(b.audience)),
    );
    for (const workload of ordered) {
      let claims: JWTPayload;
      try {
        const keys = this.keySet(await this.jwksUriOf(workload));
        claims = (
          await jwtVerify(token, keys, {
            issuer: workload.issuer,
            audience: workload.audience,
            algorithms: ALGORITHMS,
            clockTolerance: CLOCK_TOLERANCE_SECONDS,
            requiredClaims: ['exp', 'sub'],
          })
        ).payload;
      } catch (error) {
        // A claim refused after the signature verified says more than another key set's "no such key".
        if (lastError === null || signatureHeld(error) || !signatureHeld(lastError)) lastError = error;
        continue;
      }
      verifiedAny = true;
      if (subjectMatches(workload.subject, claims.sub ?? '')) proven.push({ workload, claims });
    }
    // A token no candidate accepts is refused with jose's reason; one that verifies but whose subject no
    // pattern matches, by the caller, naming the subject.
    if (!verifiedAny) throw lastError instanceof DomainError ? lastError : refused(reasonOf(lastError));
    return proven;
  }

  private keySet(uri: string): JWTVerifyGetKey {
    let keys = this.keySets.get(uri);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(uri), { timeoutDuration: FETCH_TIMEOUT_MS });
      this.keySets.set(uri, keys);
    }
    return keys;
  }

  /** The workload's `jwksUri`, or the `jwks_uri` of its issuer's OpenID discovery document (cached). */
  private async jwksUriOf(workload: Workload): Promise<string> {
    if (workload.jwksUri) return workload.jwksUri;
    const cached = this.discovered.get(workload.issuer);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.jwksUri;
    const jwksUri = discoverJwksUri(workload.issuer);
    this.discovered.set(workload.issuer, { jwksUri, at: Date.now() });
    // A failed discovery is not cached: the next call tries again.
    jwksUri.catch(() => this.discovered.delete(workload.issuer));
    try {
      return await jwksUri;
    } catch (error) {
      this.logger.warn(`OIDC discovery of ${workload.issuer} failed: ${(error as Error).message}`);
      throw refused("the issuer's keys could not be found");
    }
  }

  /** The workload's users row (kind 'workload', no passkey), inserted the first time the workload calls. */
  private async userOf(workload: Workload, username: string): Promise<{ id: string; status: string }> {
    const known = this.userIds.get(workload.id);
    const select = known
      ? this.dataSource.query('SELECT id, status FROM users WHERE id = $1', [known])
      : this.dataSource.query('SELECT id, status FROM users WHERE username = $1', [username]);
    let rows = (await select) as Array<{ id: string; status: string }>;
    if (rows.length === 0) {
      await this.dataSource.query(
        `INSERT INTO users (id, username, display_name, kind, webauthn_user_id)
         VALUES ($1, $2, $3, 'workload', $4) ON CONFLICT (username) DO NOTHING`,
        [uuidv7(), username, workload.title, randomBytes(32)],
      );
      rows = await this.dataSource.query('SELECT id, status FROM users WHERE username = $1', [username]);
    }
    if (rows.length === 0) throw new DomainError(ErrorCode.INTERNAL, 'The workload row is missing');
    this.userIds.set(workload.id, rows[0].id);
    return rows[0];
  }
}

/** Reads `<issuer>/.well-known/openid-configuration` (bounded) and returns its `jwks_uri`. */
async function discoverJwksUri(issuer: string): Promise<string> {
  const url = new URL(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  const response = await fetch(url, {
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    redirect: 'error',
    headers: { accept: 'application/json' },
  });
  if (!response.ok) throw new Error(`discovery answered ${response.status}`);
  const document = JSON.parse(await boundedText(response, DISCOVERY_MAX_BYTES)) as {
    issuer?: unknown;
    jwks_uri?: unknown;
  };
  if (document.issuer !== issuer) throw new Error('discovery names another issuer');
  if (typeof document.jwks_uri !== 'string') throw new Error('discovery has no jwks_uri');
  const jwksUri = new URL(document.jwks_uri);
  if (!isHttpsOrLocal(jwksUri)) throw new Error(`jwks_uri ${jwksUri.href} is not https`);
  return jwksUri.href;
}

/** The body as text, reading no more than `limit` bytes whatever the server sends or claims. */
async function boundedText(response: Response, limit: number): Promise<string> {
  if (Number(response.headers.get('content-length') ?? 0) > limit)
    throw new Error('discovery document too large');
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > limit) {
      await response.body?.cancel().catch(() => undefined);
      throw new Error('discovery document too large');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
