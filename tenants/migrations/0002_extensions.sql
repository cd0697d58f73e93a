-- Extensions live in `public` (never tables). pg_trgm is a trusted extension: the database
-- owner may create it without superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;
