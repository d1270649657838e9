"""Database-side protection of every audit table, beyond the row triggers of 0002.

- TRUNCATE is refused on the event, seal, chain-head and retention-cut tables
  (a statement-level trigger: row triggers never see a TRUNCATE).
- The chain head moves only when an event extends it: inserting an event
  advances its chain's head in the same statement (``bastion_audit_event_appended``),
  and the head's own trigger accepts only that step (seq + 1, prev = old head,
  and the event named must exist). A new head starts empty (seq 0, genesis).
  Heads are never deleted, so a tenant's chain cannot quietly disappear.
- Deleting events and moving a retention cut happen only inside the
  SECURITY DEFINER function ``bastion_audit_retention_purge``. It leaves a
  per-transaction pass in ``audit_retention_pass`` (no privileges for PUBLIC)
  that the row triggers check; the old settable ``bastion.audit_retention``
  setting no longer means anything.

None of this stops the owner of the tables (who may disable triggers) or a
superuser: the application must run as a role that owns none of them (see
apps.audit.checks and the README's security notes).
"""

from django.db import migrations

GENESIS = "'\\x" + "00" * 32 + "'::bytea"

SQL = f"""
CREATE TABLE audit_retention_pass (
    xact xid8 NOT NULL,
    chain bigint NOT NULL,
    up_to_seq bigint NOT NULL,
    PRIMARY KEY (xact, chain)
);
REVOKE ALL ON audit_retention_pass FROM PUBLIC;

-- SECURITY DEFINER so that a trigger fired by the application role can read the
-- pass table it has no privileges on (and answer "no pass" instead of failing oddly).
CREATE OR REPLACE FUNCTION bastion_audit_retention_pass_held(p_chain bigint, p_seq bigint) RETURNS boolean
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT EXISTS (
        SELECT 1 FROM audit_retention_pass
        WHERE xact = pg_current_xact_id() AND chain = p_chain AND p_seq <= up_to_seq
    )
$$;

-- Events and seals: never updated; events deleted only under a retention pass.
CREATE OR REPLACE FUNCTION bastion_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_auditevent'
       AND bastion_audit_retention_pass_held(OLD.chain, OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION bastion_audit_no_truncate() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: TRUNCATE refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION bastion_audit_no_truncate();
CREATE TRIGGER audit_seal_no_truncate BEFORE TRUNCATE ON audit_auditseal
    FOR EACH STATEMENT EXECUTE FUNCTION bastion_audit_no_truncate();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_auditchainhead
    FOR EACH STATEMENT EXECUTE FUNCTION bastion_audit_no_truncate();
CREATE TRIGGER audit_cut_no_truncate BEFORE TRUNCATE ON audit_auditretentioncut
    FOR EACH STATEMENT EXECUTE FUNCTION bastion_audit_no_truncate();

-- An event must extend its chain's head; inserting it moves the head.
CREATE OR REPLACE FUNCTION bastion_audit_event_appended() RETURNS trigger AS $$
BEGIN
    UPDATE audit_auditchainhead
       SET seq = NEW.seq, prev_hash = NEW.prev_hash, head_hash = NEW.hash, updated_at = now()
     WHERE chain = NEW.chain AND seq = NEW.seq - 1 AND head_hash = NEW.prev_hash;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'audit event (chain %, seq %) does not extend the chain head', NEW.chain, NEW.seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_event_appended AFTER INSERT ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION bastion_audit_event_appended();

-- Heads: created empty, advanced one linked step at a time to an existing event, never deleted.
CREATE OR REPLACE FUNCTION bastion_audit_head_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.seq = 0 AND NEW.head_hash = {GENESIS} AND NEW.prev_hash = {GENESIS} THEN
            RETURN NEW;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        IF NEW.chain = OLD.chain AND NEW.seq = OLD.seq + 1 AND NEW.prev_hash = OLD.head_hash
           AND EXISTS (SELECT 1 FROM audit_auditevent
                        WHERE chain = NEW.chain AND seq = NEW.seq
                          AND prev_hash = NEW.prev_hash AND hash = NEW.head_hash) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_auditchainhead moves only with the events it heads: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_head_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_auditchainhead
    FOR EACH ROW EXECUTE FUNCTION bastion_audit_head_guard();

-- Retention cuts: written only by the purge function (under its pass), only forward, never deleted.
CREATE OR REPLACE FUNCTION bastion_audit_cut_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE')
       AND bastion_audit_retention_pass_held(NEW.chain, NEW.up_to_seq)
       AND (TG_OP = 'INSERT' OR (NEW.chain = OLD.chain AND NEW.up_to_seq > OLD.up_to_seq)) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_auditretentioncut changes only through bastion_audit_retention_purge: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_cut_guard BEFORE INSERT OR UPDATE OR DELETE ON audit_auditretentioncut
    FOR EACH ROW EXECUTE FUNCTION bastion_audit_cut_guard();

-- The one way events leave the log. Runs as the owner of the tables (SECURITY
-- DEFINER), so the application role needs EXECUTE on it and no DELETE on any
-- audit table. Deletes the longest prefix (by seq) of the chain whose events all
-- occurred before p_older_than, moves the chain's cut there, and returns what it
-- did; the caller records audit.retention_purge (verification insists on it).
CREATE OR REPLACE FUNCTION bastion_audit_retention_purge(p_chain bigint, p_older_than timestamptz)
RETURNS TABLE (deleted bigint, from_seq bigint, up_to_seq bigint, anchor_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    v_head bigint;
    v_start bigint;
    v_anchor bytea;
    v_keep bigint;
    v_up_to bigint;
    v_deleted bigint := 0;
BEGIN
    -- clock_timestamp(), not now(): now() is the start of a possibly long transaction.
    IF p_older_than IS NULL OR p_older_than > clock_timestamp() THEN
        RAISE EXCEPTION 'older_than must not be in the future' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT h.seq INTO v_head FROM audit_auditchainhead h WHERE h.chain = p_chain FOR UPDATE;
    SELECT c.up_to_seq, c.anchor_hash INTO v_start, v_anchor
      FROM audit_auditretentioncut c WHERE c.chain = p_chain FOR UPDATE;
    v_start := coalesce(v_start, 0);
    v_up_to := v_start;
    IF v_head IS NOT NULL THEN
        -- Walks the (chain, seq) index from the old end; stops at the first event young enough to keep.
        SELECT e.seq INTO v_keep FROM audit_auditevent e
         WHERE e.chain = p_chain AND e.seq > v_start AND e.occurred_at >= p_older_than
         ORDER BY e.seq LIMIT 1;
        v_up_to := CASE WHEN v_keep IS NULL THEN v_head ELSE v_keep - 1 END;
    END IF;
    IF v_up_to > v_start THEN
        SELECT e.hash INTO v_anchor FROM audit_auditevent e WHERE e.chain = p_chain AND e.seq = v_up_to;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'event seq % of chain % is missing; run audit_verify before purging', v_up_to, p_chain
                USING ERRCODE = 'data_exception';
        END IF;
        INSERT INTO audit_retention_pass (xact, chain, up_to_seq) VALUES (pg_current_xact_id(), p_chain, v_up_to);
        DELETE FROM audit_auditevent e WHERE e.chain = p_chain AND e.seq > v_start AND e.seq <= v_up_to;
        GET DIAGNOSTICS v_deleted = ROW_COUNT;
        INSERT INTO audit_auditretentioncut AS c (chain, up_to_seq, anchor_hash, cut_at)
        VALUES (p_chain, v_up_to, v_anchor, now())
        ON CONFLICT (chain) DO UPDATE
            SET up_to_seq = EXCLUDED.up_to_seq, anchor_hash = EXCLUDED.anchor_hash, cut_at = EXCLUDED.cut_at;
        DELETE FROM audit_retention_pass p WHERE p.xact = pg_current_xact_id() AND p.chain = p_chain;
    END IF;
    RETURN QUERY SELECT v_deleted, v_start + 1, v_up_to, v_anchor;
END
$$;
REVOKE ALL ON FUNCTION bastion_audit_retention_purge(bigint, timestamptz) FROM PUBLIC;
"""

REVERSE = """
DROP FUNCTION IF EXISTS bastion_audit_retention_purge(bigint, timestamptz);
DROP TRIGGER IF EXISTS audit_cut_guard ON audit_auditretentioncut;
DROP FUNCTION IF EXISTS bastion_audit_cut_guard();
DROP TRIGGER IF EXISTS audit_head_guard ON audit_auditchainhead;
DROP FUNCTION IF EXISTS bastion_audit_head_guard();
DROP TRIGGER IF EXISTS audit_event_appended ON audit_auditevent;
DROP FUNCTION IF EXISTS bastion_audit_event_appended();
DROP TRIGGER IF EXISTS audit_cut_no_truncate ON audit_auditretentioncut;
DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_auditchainhead;
DROP TRIGGER IF EXISTS audit_seal_no_truncate ON audit_auditseal;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_auditevent;
DROP FUNCTION IF EXISTS bastion_audit_no_truncate();
CREATE OR REPLACE FUNCTION bastion_audit_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('bastion.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP FUNCTION IF EXISTS bastion_audit_retention_pass_held(bigint, bigint);
DROP TABLE IF EXISTS audit_retention_pass;
"""

# Existing chains were written with head rows at seq >= 1 by the old upsert; they
# stay valid (the guard only constrains later writes). No data changes here.


class Migration(migrations.Migration):
    dependencies = [("audit", "0004_action_index_collate_c")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
