-- Issue 11: every node logs in to the brokers with its own account.
--
-- `mqtt_password` is the password of the node's broker account (username =
-- nodes.uid), issued by device-registry when the node is first bound and kept
-- across rebinds. NULL = the node has no account yet (an unbound node logs in
-- as `hydro-provision`). device-registry keeps every enabled broker's
-- dynamic-security accounts in line with this column; a decommissioned node's
-- password is cleared, which removes its account.
ALTER TABLE nodes ADD COLUMN mqtt_password TEXT
    CHECK (mqtt_password IS NULL OR length(mqtt_password) BETWEEN 32 AND 128);
