import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Passkeys, one-time enrollment invites, sessions, ceremony and step-up challenges (DESIGN §3, §5). */
export class Identity1764000000000 implements MigrationInterface {
  name = 'Identity1764000000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    // The WebAuthn user handle: random, so it reveals nothing about the account (WebAuthn L3 §14.6.1).
    await queryRunner.query(`
      ALTER TABLE users
        ADD COLUMN webauthn_user_id bytea NOT NULL UNIQUE DEFAULT uuid_send(gen_random_uuid()),
        ADD COLUMN step_up_locked_until timestamptz`);
    await queryRunner.query(`
      CREATE TABLE authenticators (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        credential_id text NOT NULL UNIQUE,
        public_key bytea NOT NULL,
        sign_count bigint NOT NULL CHECK (sign_count >= 0),
        aaguid text NOT NULL,
        backup_eligible boolean NOT NULL,
        backed_up boolean NOT NULL,
        transports text[] NOT NULL DEFAULT '{}',
        name text NOT NULL,
        enrolled_via text NOT NULL CHECK (enrolled_via IN ('invite', 'step-up')),
        created_at timestamptz NOT NULL,
        last_used_at timestamptz,
        disabled_at timestamptz,
        disabled_reason text,
        removed_at timestamptz
      )`);
    await queryRunner.query(
      `CREATE INDEX authenticators_user_idx ON authenticators (user_id) WHERE removed_at IS NULL`,
    );
    await queryRunner.query(`
      CREATE TABLE enrollment_invites (
        id uuid PRIMARY KEY,
        token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        user_id uuid NOT NULL REFERENCES users (id),
        created_by text NOT NULL,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      )`);
    await queryRunner.query(`
      CREATE TABLE sessions (
        id uuid PRIMARY KEY,
        token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        user_id uuid NOT NULL REFERENCES users (id),
        authenticator_id uuid REFERENCES authenticators (id),
        created_at timestamptz NOT NULL,
        last_seen_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        ended_at timestamptz,
        end_reason text,
        ip text,
        user_agent text
      )`);
    await queryRunner.query(`CREATE INDEX sessions_user_idx ON sessions (user_id) WHERE ended_at IS NULL`);
    // Enrollment, sign-in and authenticator registration: the challenge is looked up by its value, which
    // the client echoes inside clientDataJSON.
    await queryRunner.query(`
      CREATE TABLE webauthn_ceremonies (
        id uuid PRIMARY KEY,
        purpose text NOT NULL CHECK (purpose IN ('enroll', 'login', 'register')),
        challenge text NOT NULL UNIQUE,
        user_id uuid REFERENCES users (id),
        invite_id uuid REFERENCES enrollment_invites (id),
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      )`);
    await queryRunner.query(`
      CREATE TABLE step_up_challenges (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES users (id),
        action text NOT NULL,
        subject_id text NOT NULL,
        subject_digest text NOT NULL,
        nonce text NOT NULL,
        challenge text NOT NULL UNIQUE,
        created_at timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      )`);
    // Failed step-ups are counted from the audit log, per actor, over a sliding window.
    await queryRunner.query(
      `CREATE INDEX audit_events_actor_action_idx ON audit_events (actor_id, action, at)`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP INDEX audit_events_actor_action_idx`);
    await queryRunner.query(`DROP TABLE step_up_challenges`);
    await queryRunner.query(`DROP TABLE webauthn_ceremonies`);
    await queryRunner.query(`DROP TABLE sessions`);
    await queryRunner.query(`DROP TABLE enrollment_invites`);
    await queryRunner.query(`DROP TABLE authenticators`);
    await queryRunner.query(
      `ALTER TABLE users DROP COLUMN step_up_locked_until, DROP COLUMN webauthn_user_id`,
    );
  }
}
