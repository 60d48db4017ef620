//! Counters of the relay server, as a plain snapshot (a Prometheus exporter can be
//! layered on top by the binary).

/// A snapshot of the relay's counters. `*_active`/`*_open` are gauges, the rest count
/// since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayMetrics {
    /// Connections currently open (inbound and outbound).
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections refused because of the connection limit.
    pub connections_refused: u64,
    /// Connections the relay closed because the peer misbehaved (slow or stalled frames,
    /// idleness, framing errors, repeated authentication failures).
    pub connections_dropped: u64,
    /// Sessions (Use-Path grants) currently valid.
    pub sessions_active: u64,
    /// Sessions granted since start.
    pub sessions_created: u64,
    /// Sessions that ended because their Expires ran out.
    pub sessions_expired: u64,
    /// 401 challenges sent.
    pub auth_challenges: u64,
    /// AUTH requests whose credentials were wrong, stale or replayed.
    pub auth_failures: u64,
    /// Credentials that reused a nonce count already seen (replays).
    pub nonce_replays: u64,
    /// Frames (or segments of large frames) received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes written to sockets.
    pub bytes_out: u64,
    /// SEND chunks forwarded (a re-chunked large chunk counts once per piece).
    pub sends_forwarded: u64,
    /// REPORT requests forwarded.
    pub reports_forwarded: u64,
    /// Frames forwarded to the relay itself without a socket (both Use-Paths its own).
    pub internal_hops: u64,
    /// Non-2xx responses the relay generated.
    pub error_responses: u64,
    /// Failure REPORTs the relay generated.
    pub failure_reports: u64,
    /// Malformed frames received (answered or dropped).
    pub decode_errors: u64,
    /// Forwarded transactions that got no response in time or lost their connection.
    pub transaction_failures: u64,
    /// Large chunks whose forwarding was cut (one side went away mid-chunk).
    pub aborted_chunks: u64,
}
