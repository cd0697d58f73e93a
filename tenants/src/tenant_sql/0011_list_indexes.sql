-- Version 11: counts and lists filtered by a customer's level or stage answer from one small
-- index (index-only once the table is vacuumed), and so does the unfiltered count; the
-- planner gets statistics on the address's city, which lists and counts filter by.
CREATE INDEX customers_facets ON customers (level, stage, owner_id) WHERE deleted_at IS NULL;
CREATE STATISTICS customers_city (ndistinct, dependencies) ON level, (address ->> 'city') FROM customers;
