-- Pinned definitions of the tools published from upstream MCP servers: what the owner allowed,
-- served to clients whatever the upstream says later. `drift` records how the live definition
-- differs ('description', 'schema' or 'vanished') until `upstreams approve` pins it again.
CREATE TABLE upstream_tools (
    upstream        TEXT NOT NULL,
    name            TEXT NOT NULL,           -- the tool's name at the upstream
    definition      TEXT NOT NULL,           -- the MCP Tool object, JSON
    pinned_at       INTEGER NOT NULL,
    drift           TEXT,
    PRIMARY KEY (upstream, name)
);
