-- A retried span may carry another correlation ID than its first copy (an exporter that
-- learnt the ID late). The upsert then moves the span to the new correlation, and the old
-- correlation's summary must follow: it is deleted once no span carries it any more, and
-- otherwise its times and error flag are worked out again from the spans that still do.
-- Without this the flows list kept the old ID with no spans (dated 1970).
--
-- The trigger runs only for rows whose correlation ID really changed, which happens on a
-- retry, never on a first insert.

CREATE TRIGGER spans_correlation_moved AFTER UPDATE OF correlation_id ON spans
WHEN old.correlation_id IS NOT NULL AND old.correlation_id IS NOT new.correlation_id
BEGIN
    DELETE FROM correlations
    WHERE correlation_id = old.correlation_id
      AND NOT EXISTS (
          SELECT 1 FROM spans s
          WHERE s.segment IN (
                    SELECT segment FROM span_segments
                    WHERE segment BETWEEN correlations.first_segment AND correlations.last_segment)
            AND s.correlation_id = old.correlation_id);
    UPDATE correlations SET (first_start_ns, last_end_ns, has_error) = (
        SELECT min(s.start_ns), max(max(s.end_ns, s.start_ns)), max(s.status_code = 2)
        FROM spans s
        WHERE s.segment IN (
                  SELECT segment FROM span_segments
                  WHERE segment BETWEEN correlations.first_segment AND correlations.last_segment)
          AND s.correlation_id = old.correlation_id)
    WHERE correlation_id = old.correlation_id;
END;

-- Summaries already left without spans by such retries.
DELETE FROM correlations
WHERE NOT EXISTS (
    SELECT 1 FROM spans s
    WHERE s.segment IN (
              SELECT segment FROM span_segments
              WHERE segment BETWEEN correlations.first_segment AND correlations.last_segment)
      AND s.correlation_id = correlations.correlation_id);
