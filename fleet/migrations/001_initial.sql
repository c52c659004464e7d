-- Fleet schema, version 1. Applied once, in a transaction, by fleet.db.migrate.

-- Every data message (telemetry, state, event, alarm, stats, command result) of every gateway,
-- once: the primary key is the exactly-once guarantee. A redelivered message finds its row here
-- and writes nothing else.
CREATE TABLE ledger (
    gateway_id  text    NOT NULL,
    seq         bigint  NOT NULL,
    kind        text    NOT NULL,
    ts_ms       bigint  NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (gateway_id, seq)
);

CREATE TABLE gateways (
    gateway_id        text PRIMARY KEY,
    site              text NOT NULL,
    prefix            text NOT NULL,
    version           text,
    versions          jsonb,
    config_sha256     text,
    boot_reason       text,
    started_ms        bigint,
    public_keys       jsonb,
    births            integer NOT NULL DEFAULT 0,
    restarts          integer NOT NULL DEFAULT 0,
    outbox_replaced   integer NOT NULL DEFAULT 0,
    birth_ts_ms       bigint,
    online            boolean,
    status_ts_ms      bigint,
    stats             jsonb,
    stats_seq         bigint,
    stats_ts_ms       bigint,
    last_seen         timestamptz NOT NULL DEFAULT now()
);

-- Readings: one row per reading, partitioned by month on the reading's own time (TimescaleDB-ready:
-- `create_hypertable` can take over this layout). Deduplicated through the ledger, so no key here.
CREATE TABLE readings (
    gateway_id text NOT NULL,
    seq        bigint NOT NULL,
    source_id  text NOT NULL,
    point      text NOT NULL,
    ts         timestamptz NOT NULL,
    value      double precision,
    value_text text,
    quality    text,
    counter    boolean NOT NULL DEFAULT false
) PARTITION BY RANGE (ts);
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
CREATE INDEX ON readings (gateway_id, source_id, point, ts);

-- The newest value of each state point.
CREATE TABLE states (
    gateway_id text NOT NULL,
    source_id  text NOT NULL,
    point      text NOT NULL,
    seq        bigint NOT NULL,
    ts_ms      bigint NOT NULL,
    value      jsonb,
    quality    text,
    PRIMARY KEY (gateway_id, source_id, point)
);

CREATE TABLE events (
    gateway_id text NOT NULL,
    seq        bigint NOT NULL,
    ts_ms      bigint NOT NULL,
    source_id  text NOT NULL,
    kind       text NOT NULL,
    severity   text NOT NULL,
    attrs      jsonb NOT NULL,
    PRIMARY KEY (gateway_id, seq)
);
CREATE INDEX ON events (gateway_id, kind, ts_ms);

-- Alarms with their lifecycle, keyed as the gateway keys them. `rank` only moves forward
-- (open 0 < acknowledged 1 < resolved 2), so messages arriving out of order cannot reopen one.
CREATE TABLE alarms (
    gateway_id  text NOT NULL,
    alarm_id    text NOT NULL,
    kind        text,
    source_id   text,
    state       text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    rank        smallint NOT NULL,
    opened_ms   bigint,
    acked_ms    bigint,
    acked_by    text,
    resolved_ms bigint,
    notify      integer NOT NULL DEFAULT 1,
    attrs       jsonb,
    PRIMARY KEY (gateway_id, alarm_id)
);
CREATE INDEX ON alarms (state);

-- Device health from the newest `stats` of each gateway.
CREATE TABLE devices (
    gateway_id       text NOT NULL,
    device_id        text NOT NULL,
    source_id        text NOT NULL,
    kind             text NOT NULL,
    online           boolean,
    last_seen_ms     bigint,
    offline_since_ms bigint,
    errors           bigint NOT NULL DEFAULT 0,
    last_error       text,
    report           jsonb NOT NULL,
    stats_seq        bigint NOT NULL,
    PRIMARY KEY (gateway_id, device_id)
);

-- Seqs a replaced outbox reported as lost (`outbox_replaced` seq_ranges_lost), so the loss report
-- can tell them from unexplained gaps.
CREATE TABLE lost_ranges (
    gateway_id text NOT NULL,
    event_seq  bigint NOT NULL,
    klass      text NOT NULL,
    first_seq  bigint NOT NULL,
    last_seq   bigint NOT NULL,
    PRIMARY KEY (gateway_id, event_seq, klass, first_seq)
);

-- Commands the operator tools and the page sent, matched to their results by correlation id.
CREATE TABLE commands (
    id            text PRIMARY KEY,
    gateway_id    text NOT NULL,
    site          text NOT NULL,
    command       text NOT NULL,
    args          jsonb NOT NULL,
    key_id        text,
    envelope      jsonb NOT NULL,
    rollout_id    text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    outcome       text,
    code          text,
    reason        text,
    result        jsonb,
    result_seq    bigint,
    result_ts_ms  bigint
);
CREATE INDEX ON commands (gateway_id, requested_at);

-- Results whose request this fleet did not send (another tool, the local socket): kept for audit.
CREATE TABLE command_results (
    gateway_id     text NOT NULL,
    seq            bigint NOT NULL,
    correlation_id text,
    command        text,
    outcome        text NOT NULL,
    code           text,
    by_key         text,
    origin         text,
    doc            jsonb NOT NULL,
    PRIMARY KEY (gateway_id, seq)
);
CREATE INDEX ON command_results (correlation_id);

-- Rollouts (deployments of a config, release updates) in waves.
CREATE TABLE rollouts (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('deploy', 'update')),
    target          text NOT NULL,
    args            jsonb NOT NULL DEFAULT '{}',
    state           text NOT NULL,
    canary_share    double precision NOT NULL,
    max_rollbacks   double precision NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    halted_reason   text
);
CREATE TABLE rollout_members (
    rollout_id  text NOT NULL REFERENCES rollouts(id),
    gateway_id  text NOT NULL,
    wave        integer NOT NULL,
    command_id  text,
    state       text NOT NULL DEFAULT 'pending',
    report_seq  bigint,
    detail      text,
    PRIMARY KEY (rollout_id, gateway_id)
);
