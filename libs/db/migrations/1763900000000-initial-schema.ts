import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Users, policy versions, requests, approvals, grants, signing keys and the append-only audit chain. */
export class InitialSchema1763900000000 implements MigrationInterface {
  name = 'InitialSchema1763900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`
      CREATE TABLE users (
        id uuid PRIMARY KEY,
        username text NOT NULL UNIQUE,
        display_name text NOT NULL,
        roles text[] NOT NULL DEFAULT '{}' CHECK (roles <@ ARRAY['admin', 'auditor']::text[]),
        status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await queryRunner.query(`
      CREATE TABLE policy_versions (
        hash text PRIMARY KEY CHECK (hash ~ '^[0-9a-f]{64}$'),
        content jsonb NOT NULL,
        loaded_at timestamptz NOT NULL DEFAULT now(),
        loaded_by text NOT NULL
      )`);
    await queryRunner.query(`
      CREATE TABLE elevation_requests (
        id uuid PRIMARY KEY,
        requester_id uuid NOT NULL REFERENCES users (id),
        entitlement_id text NOT NULL,
        policy_hash text NOT NULL REFERENCES policy_versions (hash),
        scope jsonb NOT NULL,
        duration_seconds integer NOT NULL CHECK (duration_seconds > 0),
        justification text NOT NULL,
        ticket text,
        not_before timestamptz,
        break_glass boolean NOT NULL DEFAULT false,
        extends_request_id uuid REFERENCES elevation_requests (id),
        approvals_required integer NOT NULL CHECK (approvals_required >= 0),
        state text NOT NULL CHECK (state IN
          ('PENDING', 'APPROVED', 'DENIED', 'ACTIVE', 'ENDED', 'REVOKED', 'CANCELLED', 'EXPIRED')),
        created_at timestamptz NOT NULL,
        pending_until timestamptz,
        decided_at timestamptz,
        activate_by timestamptz,
        activated_at timestamptz,
        ends_at timestamptz,
        ended_at timestamptz,
        end_reason text
      )`);
    await queryRunner.query(
      `CREATE INDEX elevation_requests_requester_idx ON elevation_requests (requester_id, created_at DESC)`,
    );
    await queryRunner.query(
      `CREATE INDEX elevation_requests_open_idx ON elevation_requests (state) WHERE state IN ('PENDING', 'APPROVED', 'ACTIVE')`,
    );
    await queryRunner.query(`
      CREATE TABLE approvals (
        id uuid PRIMARY KEY,
        request_id uuid NOT NULL REFERENCES elevation_requests (id),
        approver_id uuid NOT NULL REFERENCES users (id),
        decision text NOT NULL CHECK (decision IN ('approve', 'deny')),
        comment text,
        credential_id text,
        authenticator_data bytea,
        client_data_json bytea,
        signature bytea,
        nonce text,
        subject_digest text,
        at timestamptz NOT NULL,
        CONSTRAINT approvals_one_per_approver UNIQUE (request_id, approver_id)
      )`);
    await queryRunner.query(`
      CREATE TABLE grants (
        id uuid PRIMARY KEY,
        request_id uuid NOT NULL REFERENCES elevation_requests (id),
        connector text NOT NULL,
        connector_type text NOT NULL,
        external_ref text NOT NULL,
        fingerprint text NOT NULL,
        issued_at timestamptz NOT NULL,
        not_after timestamptz NOT NULL,
        state text NOT NULL CHECK (state IN ('ACTIVE', 'REVOKED', 'REVOKE_FAILED')),
        revoked_at timestamptz,
        revoke_attempts integer NOT NULL DEFAULT 0,
        last_error text,
        CONSTRAINT grants_one_per_request UNIQUE (request_id)
      )`);
    await queryRunner.query(
      `CREATE INDEX grants_unrevoked_idx ON grants (not_after) WHERE state <> 'REVOKED'`,
    );
    await queryRunner.query(`
      CREATE TABLE signing_keys (
        kid text PRIMARY KEY,
        purpose text NOT NULL CHECK (purpose IN ('jwt', 'audit')),
        alg text NOT NULL,
        public_jwk jsonb NOT NULL,
        private_key_encrypted bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        retired_at timestamptz
      )`);
    await queryRunner.query(
      `CREATE UNIQUE INDEX signing_keys_one_current_idx ON signing_keys (purpose) WHERE retired_at IS NULL`,
    );
    await queryRunner.query(`
      CREATE TABLE audit_events (
        seq bigint PRIMARY KEY,
        at timestamptz NOT NULL,
        actor_id text NOT NULL,
        action text NOT NULL,
        subject_type text NOT NULL,
        subject_id text NOT NULL,
        request_id uuid,
        data jsonb NOT NULL,
        prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
        hash bytea NOT NULL CHECK (length(hash) = 32)
      )`);
    await queryRunner.query(
      `CREATE INDEX audit_events_request_idx ON audit_events (request_id, seq) WHERE request_id IS NOT NULL`,
    );
    await queryRunner.query(`
      CREATE TABLE audit_chain_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash bytea NOT NULL CHECK (length(hash) = 32)
      )`);
    await queryRunner.query(
      `INSERT INTO audit_chain_head (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'))`,
    );
    await queryRunner.query(`
      CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
          USING ERRCODE = 'insufficient_privilege';
      END
      $$`);
    await queryRunner.query(`
      CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
        FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
    await queryRunner.query(`
      CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE audit_chain_head`);
    await queryRunner.query(`DROP TABLE audit_events`);
    await queryRunner.query(`DROP FUNCTION audit_events_append_only()`);
    await queryRunner.query(`DROP TABLE signing_keys`);
    await queryRunner.query(`DROP TABLE grants`);
    await queryRunner.query(`DROP TABLE approvals`);
    await queryRunner.query(`DROP TABLE elevation_requests`);
    await queryRunner.query(`DROP TABLE policy_versions`);
    await queryRunner.query(`DROP TABLE users`);
  }
}
