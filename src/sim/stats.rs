//! Per-session counters: what one simulated Wi-Fi device did and what it received.
//!
//! Why it exists: tests assert on them ("the garbage the server sent was counted and survived",
//! "the duplicate was acknowledged but not applied", "the storm reconnected 5 times"), and the
//! CLI prints their totals. Owned by the session task (writers) and read by handles; plain
//! relaxed atomics, never a lock on the packet path.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($(#[$doc:meta])* $name:ident / $snap:ident { $($(#[$fdoc:meta])* $field:ident,)* }) => {
        /// Live counters, written by the session task.
        #[derive(Debug, Default)]
        pub(crate) struct $name {
            $(pub(crate) $field: AtomicU64,)*
        }

        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $snap {
            $($(#[$fdoc])* pub $field: u64,)*
        }

        impl $name {
            /// Reads every counter (each one atomically; the set is not a single instant).
            pub(crate) fn snapshot(&self) -> $snap {
                $snap { $($field: self.$field.load(Ordering::Relaxed),)* }
            }
        }

        impl std::ops::AddAssign for $snap {
            fn add_assign(&mut self, other: Self) {
                $(self.$field += other.$field;)*
            }
        }
    };
}

counters! {
    /// What one simulated Wi-Fi device did, as counted so far.
    Counters / SessionStats {
        /// TLS sessions established.
        connects,
        /// TCP or TLS attempts that failed.
        connect_failures,
        /// Connections that ended (any reason).
        disconnects,
        /// Connections dropped on purpose right after the hello (reconnect storm chaos).
        storms,
        /// Partitions applied (chaos or handle).
        partitions,
        /// Packets written to the socket (after chaos, bogus ones included).
        packets_sent,
        /// Bytes written to the socket.
        bytes_sent,
        /// Whole packets framed from the socket (before inbound chaos).
        packets_received,
        /// Bytes read from the socket.
        bytes_received,
        /// Junk runs the framer skipped in what the bridge sent.
        junk_events,
        /// Bytes in those junk runs.
        junk_bytes,
        /// Bridge packets that did not decode.
        decode_errors,
        /// Bridge 0x73 frames that were damaged (bad checksum, length, markers).
        frame_errors,
        /// Bridge packets of a type a device never expects (device-side types, unknown types).
        unexpected,
        /// Bridge 0x73 requests acted on (each delivery, duplicates included).
        commands,
        /// Deliveries of a (peer, msg id) already seen on this connection: acknowledged again,
        /// not applied.
        duplicates,
        /// Commands the mesh replay cache recognised: acknowledged, not applied.
        replays,
        /// Commands for a mesh id outside the home: receipt only.
        unknown_targets,
        /// 0x7B receipts sent.
        receipts,
        /// 0x73 `f9` responses sent.
        responses,
        /// 0x83 `fa db 13` own-state reports sent.
        state_reports,
        /// 0x43 packets with status records sent (self or relay).
        status_packets,
        /// Receipts sent late (receipt chaos).
        receipts_delayed,
        /// Receipts never sent (receipt chaos).
        receipts_dropped,
        /// Commands answered with a receipt only (receipt chaos).
        receipt_only,
        /// 0xD3 heartbeats sent.
        heartbeats,
        /// 0xD8 heartbeat acks received.
        heartbeat_acks,
        /// 0x28 hello acks received.
        hello_acks,
        /// 0x48 and 0x88 acks received.
        acks,
        /// 0x7B receipts received from the bridge (for device 0x73s).
        receipts_received,
        /// 0xA3 session opens answered with 0xAB.
        session_opens,
        /// Packet-log entries dropped because the ring was full.
        log_evicted,
    }
}

impl Counters {
    /// Adds `n` to one counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one to a counter.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
