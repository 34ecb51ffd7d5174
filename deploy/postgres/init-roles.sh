#!/bin/sh
# Runs once, when the PostgreSQL container initialises an empty data directory (docker-entrypoint-initdb.d):
# the owner and runtime roles of docs/deploy.md "Database roles", least privilege, no superuser for the apps.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v owner_password="$BROKER_OWNER_PASSWORD" -v runtime_password="$BROKER_RUNTIME_PASSWORD" <<'SQL'
CREATE ROLE broker_owner LOGIN PASSWORD :'owner_password';
CREATE ROLE broker_runtime LOGIN PASSWORD :'runtime_password';
CREATE DATABASE broker OWNER broker_owner;
REVOKE CONNECT, TEMPORARY ON DATABASE broker FROM PUBLIC;
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;
GRANT CONNECT ON DATABASE broker TO broker_owner, broker_runtime;
\connect broker
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO broker_owner;
SQL
