-- Version 14: a customer's city as a column of its own, kept by PostgreSQL from the address
-- (a stored generated column, no trigger), so a count or list filtered by level and city
-- answers from one index (index-only once vacuumed) instead of reading every customer of the
-- level. The record engine filters `address.city` on it when the column exists; the
-- metadata version moves so every server's cached object schemas see it at once.
ALTER TABLE customers ADD COLUMN address_city text GENERATED ALWAYS AS (address ->> 'city') STORED;
CREATE INDEX customers_level_city ON customers (level, address_city) WHERE deleted_at IS NULL;
UPDATE settings SET metadata_version = metadata_version + 1;
