-- The client address a refresh token was rotated from. A rotated token presented again within
-- the grace window from another address is logged as possible theft. An address only: the
-- tokens themselves are never stored.
ALTER TABLE refresh_tokens ADD COLUMN rotated_from_ip TEXT;
