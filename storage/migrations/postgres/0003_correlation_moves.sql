-- A retried span may carry another correlation ID than its first copy (an exporter that
-- learnt the ID late). The upsert then moves the span to the new correlation, and the old
-- correlation's summary must follow: it is deleted once no span carries it any more, and
-- otherwise its times and error flag are worked out again from the spans that still do.
-- Without this the flows list kept the old ID with no spans. (SQLite migration 0005 is the
-- same trigger.)
--
-- The trigger runs only for rows whose correlation ID really changed, which happens on a
-- retry, never on a first insert.

CREATE FUNCTION spans_correlation_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM correlations c
    WHERE c.correlation_id = OLD.correlation_id
      AND NOT EXISTS (SELECT 1 FROM spans s WHERE s.correlation_id = OLD.correlation_id);
    UPDATE correlations c SET (first_start_ns, last_end_ns, has_error) = (
        SELECT min(s.start_ns), max(greatest(s.end_ns, s.start_ns)), bool_or(s.status_code = 2)
        FROM spans s
        WHERE s.correlation_id = OLD.correlation_id)
    WHERE c.correlation_id = OLD.correlation_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER spans_correlation_moved AFTER UPDATE OF correlation_id ON spans
FOR EACH ROW
WHEN (OLD.correlation_id IS NOT NULL AND OLD.correlation_id IS DISTINCT FROM NEW.correlation_id)
EXECUTE FUNCTION spans_correlation_moved();

-- Summaries already left without spans by such retries.
DELETE FROM correlations c
WHERE NOT EXISTS (SELECT 1 FROM spans s WHERE s.correlation_id = c.correlation_id);
