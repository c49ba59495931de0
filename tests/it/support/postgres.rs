//! Running the suite on PostgreSQL: when `POSTGRES_TEST_URL` names a server (`scripts/test`
//! starts a throwaway one), every gateway a test spawns keeps its store there instead of in a
//! SQLite file, one database per data directory.

use std::path::Path;

use sha2::{Digest, Sha256};
use sqlx::Connection;

/// The variable naming the suite's PostgreSQL server (a superuser URL). Not `NEXUS_*`: the
/// gateway refuses variables of its own prefix it does not know.
pub const POSTGRES_TEST_URL: &str = "POSTGRES_TEST_URL";

/// The suite's PostgreSQL server, when the suite runs on PostgreSQL.
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_TEST_URL)
        .ok()
        .filter(|url| !url.is_empty())
}

/// Points `config` at its data directory's own PostgreSQL database when the suite runs on
/// PostgreSQL (and leaves it on the SQLite file otherwise).
pub async fn use_suite_engine(config: &mut nexus_gateway::config::Config) {
    if let Some(server) = postgres_server() {
        let url = database_for(&server, &config.data_dir).await;
        config.database_url = Some(nexus_gateway::secrets::Secret::new(url));
    }
}

/// The URL of `data_dir`'s own database on `server`, created on first use: a test that
/// restarts a gateway over the same directory finds its data again, and tests running at once
/// never share one.
pub async fn database_for(server: &str, data_dir: &Path) -> String {
    let digest = Sha256::digest(data_dir.as_os_str().as_encoded_bytes());
    let name = format!("nexus_{}", hex(&digest[..10]));
    let mut admin = sqlx::PgConnection::connect(server)
        .await
        .expect("the test PostgreSQL server answers");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .expect("pg_database");
    if exists.is_none() {
        // The name is ours (hex digits), never input.
        let create = format!("CREATE DATABASE {name}");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("create the test database");
    }
    admin.close().await.expect("closed");
    let mut url = url::Url::parse(server).expect("server URL");
    url.set_path(&name);
    url.to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
