-- Placement that follows the node (issue 10): an assignment made from where
-- a node that cannot follow config/update is observed (broker-registry's
-- common::observed sweep) is recorded with strategy 'observed'.
ALTER TABLE node_broker_assignments DROP CONSTRAINT node_broker_assignments_strategy_check;
ALTER TABLE node_broker_assignments ADD CONSTRAINT node_broker_assignments_strategy_check
    CHECK (strategy IN ('static', 'dynamic', 'priority', 'manual', 'failover', 'observed'));
