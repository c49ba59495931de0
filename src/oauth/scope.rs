//! The scopes this gateway grants (the built-in task scopes and those of upstream tools, in a
//! `ScopeCatalog` built from the configuration), and the RFC 6749 §3.3 rules for requested
//! scope: unknown scopes are ignored, and a request naming none of ours gets all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::config::Config;
use crate::config::upstreams::is_valid_upstream_scope;

/// One scope of the MCP resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read tasks and their updates.
    TasksRead,
    /// Send and cancel tasks.
    TasksWrite,
    /// Call the tools an upstream MCP server publishes under this scope (`upstream:...`).
    Upstream(Arc<str>),
}

impl Scope {
    /// The built-in scopes, in the order they are advertised.
    pub const BUILT_IN: [Scope; 2] = [Scope::TasksRead, Scope::TasksWrite];

    /// The scope as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
            Scope::Upstream(name) => name,
        }
    }

    /// Parses one scope token: a built-in scope, or any well-formed `upstream:` scope (whether
    /// this configuration still has it is the catalog's question). `None` for anything else.
    pub fn parse(token: &str) -> Option<Scope> {
        Scope::BUILT_IN
            .into_iter()
            .find(|scope| scope.as_str() == token)
            .or_else(|| is_valid_upstream_scope(token).then(|| Scope::Upstream(token.into())))
    }
}

/// The scopes this gateway grants: the built-in ones and those of the configured upstream
/// tools, with what each lets a client do (for the consent page and the owner's prompt).
#[derive(Debug, Clone, Default)]
pub struct ScopeCatalog {
    upstream: BTreeMap<Scope, String>,
}

impl ScopeCatalog {
    /// The catalog of a configuration: each upstream scope unlocks its tools.
    pub fn from_config(config: &Config) -> Self {
        let mut tools: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for upstream in &config.upstreams {
            for tool in &upstream.tools {
                *tools
                    .entry(upstream.scope_of(tool))
                    .or_default()
                    .entry(upstream.name.clone())
                    .or_default() += 1;
            }
        }
        let upstream = tools
            .into_iter()
            .map(|(scope, per_upstream)| {
                let parts: Vec<String> = per_upstream
                    .iter()
                    .map(|(name, count)| {
                        format!(
                            "{count} tool{} of {name}",
                            if *count == 1 { "" } else { "s" }
                        )
                    })
                    .collect();
                (
                    Scope::Upstream(scope.into()),
                    format!("Use {} from your homelab", parts.join(", ")),
                )
            })
            .collect();
        Self { upstream }
    }

    /// Every scope, built-in first.
    pub fn all(&self) -> ScopeSet {
        ScopeSet(
            Scope::BUILT_IN
                .into_iter()
                .chain(self.upstream.keys().cloned())
                .collect(),
        )
    }

    /// Whether this gateway grants `scope`.
    pub fn knows(&self, scope: &Scope) -> bool {
        matches!(scope, Scope::TasksRead | Scope::TasksWrite) || self.upstream.contains_key(scope)
    }

    /// What holding `scope` lets a client do.
    pub fn describe(&self, scope: &Scope) -> String {
        match scope {
            Scope::TasksRead => "Read your agent's tasks, their status and replies".into(),
            Scope::TasksWrite => "Send tasks to your agent and cancel them".into(),
            Scope::Upstream(name) => self
                .upstream
                .get(scope)
                .cloned()
                .unwrap_or_else(|| format!("Use tools published from your homelab ({name})")),
        }
    }
}

/// A set of granted scopes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// The scopes to grant for a requested `scope` parameter: those of `catalog` among the
    /// ones named, or all of them when the request names none it knows (absent, empty, or
    /// only foreign scopes such as `offline_access` or `claudeai`).
    pub fn grant_for_request(requested: Option<&str>, catalog: &ScopeCatalog) -> Self {
        let known: BTreeSet<Scope> = requested
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(Scope::parse)
            .filter(|scope| catalog.knows(scope))
            .collect();
        if known.is_empty() {
            catalog.all()
        } else {
            Self(known)
        }
    }

    /// Parses an operator-given scope string strictly: every token must be in `catalog`.
    pub fn parse_strict(text: &str, catalog: &ScopeCatalog) -> Result<Self, String> {
        let mut scopes = BTreeSet::new();
        for token in text
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|token| !token.is_empty())
        {
            let scope = Scope::parse(token)
                .filter(|scope| catalog.knows(scope))
                .ok_or_else(|| format!("unknown scope `{token}` (known: {})", catalog.all()))?;
            scopes.insert(scope);
        }
        if scopes.is_empty() {
            return Err("no scope given".into());
        }
        Ok(Self(scopes))
    }

    /// Parses a scope string from a verified token, ignoring what we do not know.
    pub fn from_token_claim(text: &str) -> Self {
        Self(
            text.split_ascii_whitespace()
                .filter_map(Scope::parse)
                .collect(),
        )
    }

    /// Whether the set holds `scope`.
    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// Whether the set holds the scope written `scope`.
    pub fn contains_str(&self, scope: &str) -> bool {
        self.0.iter().any(|held| held.as_str() == scope)
    }

    /// The scopes in advertising order.
    pub fn iter(&self) -> impl Iterator<Item = &Scope> + '_ {
        self.0.iter()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for scope in &self.0 {
            if !first {
                formatter.write_str(" ")?;
            }
            formatter.write_str(scope.as_str())?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(requested: Option<&str>, granted: &str) {
        assert_eq!(
            ScopeSet::grant_for_request(requested, &ScopeCatalog::default()).to_string(),
            granted,
            "requested {requested:?}"
        );
    }

    #[test]
    fn requested_scopes_are_filtered_and_defaulted() {
        check(None, "tasks:read tasks:write");
        check(Some(""), "tasks:read tasks:write");
        check(Some("claudeai"), "tasks:read tasks:write");
        check(Some("offline_access openid"), "tasks:read tasks:write");
        check(Some("tasks:read"), "tasks:read");
        check(Some("tasks:read offline_access"), "tasks:read");
        check(
            Some("tasks:write  tasks:read tasks:read"),
            "tasks:read tasks:write",
        );
    }

    #[test]
    fn strict_parsing_names_the_bad_scope() {
        assert_eq!(
            ScopeSet::parse_strict("tasks:read,tasks:write", &ScopeCatalog::default())
                .map(|set| set.to_string()),
            Ok("tasks:read tasks:write".into())
        );
        assert!(
            ScopeSet::parse_strict("tasks:admin", &ScopeCatalog::default())
                .is_err_and(|error| error.contains("tasks:admin"))
        );
        assert!(ScopeSet::parse_strict(" ", &ScopeCatalog::default()).is_err());
    }

    #[test]
    fn upstream_scopes_are_granted_only_when_configured() {
        let config = crate::config::Config::from_toml(
            "[[upstreams]]\nname = \"fleet\"\ncommand = \"/bin/fleet\"\ntools = [{ name = \"a\" }, { name = \"b\" }, { name = \"c\", scope = \"upstream:fleet:admin\" }]\n",
        )
        .expect("config");
        let catalog = ScopeCatalog::from_config(&config);
        assert_eq!(
            catalog.all().to_string(),
            "tasks:read tasks:write upstream:fleet upstream:fleet:admin"
        );
        assert_eq!(
            ScopeSet::grant_for_request(Some("upstream:fleet upstream:other"), &catalog)
                .to_string(),
            "upstream:fleet"
        );
        assert_eq!(
            catalog.describe(&Scope::Upstream("upstream:fleet".into())),
            "Use 2 tools of fleet from your homelab"
        );
        assert!(ScopeSet::parse_strict("upstream:other", &catalog).is_err());
        // A token keeps what it was granted, even a scope since removed from the configuration.
        assert!(ScopeSet::from_token_claim("upstream:gone").contains_str("upstream:gone"));
    }
}
