-- 0002_conversation: what ess-conversation (issue 4) adds to the baseline.
--
-- 1. Sealed outbox rows. A send command for the notifier (line.out.reply / line.out.push)
--    names its recipient, a LINE user id: personal data that DESIGN.md keeps out of every
--    store in clear. Such rows hold their payload sealed with the vault (AES-256-GCM under
--    ESS_DATA_KEY, bound to the row's msg_id) and are marked sealed; the relay opens them just
--    before publishing (libs/outbox: outbox_add_sealed). Domain events (ess.incident.*) carry
--    no personal data and stay plain text, readable by operators.
-- 2. The dialogue's codes are closed lists: CHECKs keep a bad write from ever being read back
--    as another state.

ALTER TABLE outbox ADD COLUMN sealed boolean NOT NULL DEFAULT false;

ALTER TABLE conversations
    ADD CONSTRAINT conversations_state CHECK (state IN ('idle', 'draft', 'submitted')),
    ADD CONSTRAINT conversations_language CHECK (language IN ('th', 'en')),
    ADD CONSTRAINT conversations_draft_expiry CHECK (state = 'draft' OR expires_at IS NULL);
