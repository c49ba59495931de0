-- A database for nexus-gateway replicas, on the PostgreSQL server (13 or later):
--   sudo -u postgres psql -v password="'$(openssl rand -base64 24)'" -f postgres.sql
-- then put the same password in NEXUS_DATABASE_URL (deploy/environment.example). The gateway
-- creates its tables itself at start (migrations/postgres), under the advisory lock sqlx's
-- migrator takes, so replicas may start together.
CREATE ROLE nexus LOGIN PASSWORD :password;
CREATE DATABASE nexus OWNER nexus;
-- Only the gateway's role connects to it.
REVOKE CONNECT ON DATABASE nexus FROM PUBLIC;
-- `nexus-gateway migrate-store` copies an existing SQLite store with the tables' triggers off
-- (so copied revocations are not logged twice), which needs this right (PostgreSQL 15+; on
-- older servers, run migrate-store as a superuser instead):
--   GRANT SET ON PARAMETER session_replication_role TO nexus;
