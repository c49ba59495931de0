//! The scopes this gateway grants, and the RFC 6749 §3.3 rules for requested scope: unknown
//! scopes are ignored, and a request naming none of ours gets the default (all of them).

use std::collections::BTreeSet;
use std::fmt;

/// One scope of the MCP resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read tasks and their updates.
    TasksRead,
    /// Send and cancel tasks.
    TasksWrite,
}

impl Scope {
    /// Every scope, in the order they are advertised.
    pub const ALL: [Scope; 2] = [Scope::TasksRead, Scope::TasksWrite];

    /// The scope as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TasksRead => "tasks:read",
            Scope::TasksWrite => "tasks:write",
        }
    }

    /// What holding this scope lets a client do, for the consent page.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::TasksRead => "Read your agent's tasks, their status and replies",
            Scope::TasksWrite => "Send tasks to your agent and cancel them",
        }
    }

    /// Parses one scope token; `None` for scopes we do not know.
    pub fn parse(token: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == token)
    }
}

/// A set of granted scopes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(BTreeSet<Scope>);

impl ScopeSet {
    /// Every scope.
    pub fn all() -> Self {
        Self(Scope::ALL.into_iter().collect())
    }

    /// The scopes to grant for a requested `scope` parameter: ours among those named, or
    /// all of ours when the request names none (absent, empty, or only foreign scopes
    /// such as `offline_access` or `claudeai`).
    pub fn grant_for_request(requested: Option<&str>) -> Self {
        let known: BTreeSet<Scope> = requested
            .unwrap_or_default()
            .split_ascii_whitespace()
            .filter_map(Scope::parse)
            .collect();
        if known.is_empty() {
            Self::all()
        } else {
            Self(known)
        }
    }

    /// Parses a stored or operator-given scope string strictly: every token must be ours.
    pub fn parse_strict(text: &str) -> Result<Self, String> {
        let mut scopes = BTreeSet::new();
        for token in text
            .split(|c: char| c.is_ascii_whitespace() || c == ',')
            .filter(|token| !token.is_empty())
        {
            let scope = Scope::parse(token).ok_or_else(|| {
                let known: Vec<&str> = Scope::ALL.iter().map(|scope| scope.as_str()).collect();
                format!("unknown scope `{token}` (known: {})", known.join(", "))
            })?;
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
    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    /// The scopes in advertising order.
    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
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
            ScopeSet::grant_for_request(requested).to_string(),
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
            ScopeSet::parse_strict("tasks:read,tasks:write").map(|set| set.to_string()),
            Ok("tasks:read tasks:write".into())
        );
        assert!(
            ScopeSet::parse_strict("tasks:admin").is_err_and(|error| error.contains("tasks:admin"))
        );
        assert!(ScopeSet::parse_strict(" ").is_err());
    }
}
